"""Real processes over gRPC: a Flower server running an EdgeStrategy, and devices that each hold
one HAPT user's data and connect to it. Uses Flower's gRPC transport (`start_server` /
`start_client`, which Flower marks deprecated in favour of its SuperLink/SuperNode
deployment engine but still ships); the strategy and client code are the ones simulation uses.

    edgeprune federated serve --address 127.0.0.1:8080 --method pqsu --rounds 5 --min-devices 3
    edgeprune federated device --address 127.0.0.1:8080 --user 3     (one per device)"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.federated.client import EdgeClient
from edgeprune.federated.strategy import EdgeStrategy
from edgeprune.zoo import create_model


def serve(address: str, method: str = "fedavg", rounds: int = 3, min_devices: int = 2, local_epochs: int = 1,
          lr: float = 0.05, prune_ratio: float = 0.5, arch: str = "har_cnn", round_timeout: float | None = 600,
          checkpoint_dir: str | None = None, out: str | None = None, seed: int = 0) -> dict:
    """Run the server until `rounds` rounds are done; returns (and writes to `out`) the history."""
    import flwr
    from edgeprune.data import load_hapt

    data = load_hapt()
    kwargs = {"num_classes": data.num_classes}
    xt, yt = data.test()
    torch.manual_seed(seed)
    strategy = EdgeStrategy(arch, kwargs, create_model(arch, **kwargs), xt[:1], DataLoader(TensorDataset(xt, yt), 512),
                            method, prune_ratio, local_epochs, lr, min_fit_clients=min_devices,
                            min_available_clients=min_devices, checkpoint_dir=checkpoint_dir)
    remaining = rounds - strategy.done_rounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if remaining > 0:
            flwr.server.start_server(server_address=address, strategy=strategy,
                                     config=flwr.server.ServerConfig(num_rounds=remaining, round_timeout=round_timeout))
    result = strategy.history.to_dict()
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
    return result


def device(address: str, user: int, arch: str = "har_cnn", fault: str | None = None, seed: int = 0) -> None:
    """Connect one device (HAPT user `user`'s windows) and train when the server asks."""
    from flwr.compat.client.app import start_client

    from edgeprune.data import load_hapt

    logging.getLogger("flwr").setLevel(logging.WARNING)
    data = load_hapt()
    x, y = data.user_data(user)
    client = EdgeClient(f"user{user}", x, y, arch, {"num_classes": data.num_classes}, seed=seed + user, fault=fault)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start_client(server_address=address, client=client.to_client(), insecure=True, max_retries=30,
                     max_wait_time=120)
