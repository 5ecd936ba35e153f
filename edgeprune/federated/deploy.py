"""Real processes: a server running an EdgeStrategy, and devices that each hold one HAPT user's
data. Two ways, with the strategy and device code simulation uses:

- Flower's Deployment Runtime (current): a SuperLink, one SuperNode per device (its user in
  `--node-config user=N`), and a Flower App (`edgeprune federated app --out DIR` writes it;
  `server_fn` / `client_fn` below are its components) submitted with `flwr run DIR`.
- Flower's older gRPC entry points (`start_server` / `start_client`, deprecated by Flower but
  shipped): `edgeprune federated serve` and `edgeprune federated device --user N`."""
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


def make_strategy(method: str = "fedavg", min_devices: int = 2, local_epochs: int = 1, lr: float = 0.05,
                  prune_ratio: float = 0.5, arch: str = "har_cnn", checkpoint_dir: str | None = None,
                  seed: int = 0) -> EdgeStrategy:
    """The server's strategy on HAPT (accuracy on the held-out users 22-30 every round)."""
    from edgeprune.data import load_hapt

    data = load_hapt()
    kwargs = {"num_classes": data.num_classes}
    xt, yt = data.test()
    torch.manual_seed(seed)
    return EdgeStrategy(arch, kwargs, create_model(arch, **kwargs), xt[:1], DataLoader(TensorDataset(xt, yt), 512),
                        method, prune_ratio, local_epochs, lr, min_fit_clients=min_devices,
                        min_available_clients=min_devices, checkpoint_dir=checkpoint_dir)


def make_client(user: int, arch: str = "har_cnn", fault: str | None = None, seed: int = 0) -> EdgeClient:
    """A device holding HAPT user `user`'s windows."""
    from edgeprune.data import load_hapt

    data = load_hapt()
    if user not in set(int(u) for u in data.user):
        raise ValueError(f"HAPT has no user {user}; devices hold users 1-30 (1-21 are the training users)")
    x, y = data.user_data(user)
    return EdgeClient(f"user{user}", x, y, arch, {"num_classes": data.num_classes}, seed=seed + user, fault=fault)


def server_fn(context):
    """The ServerApp's components from the run config of the Flower App."""
    from flwr.server import ServerAppComponents, ServerConfig
    cfg = context.run_config
    strategy = make_strategy(str(cfg.get("method", "pqsu")), int(cfg.get("min-devices", 2)),
                             int(cfg.get("local-epochs", 1)), float(cfg.get("lr", 0.05)),
                             float(cfg.get("prune-ratio", 0.5)), checkpoint_dir=str(cfg.get("checkpoint", "")) or None,
                             seed=int(cfg.get("seed", 0)))
    return ServerAppComponents(strategy=strategy,
                               config=ServerConfig(num_rounds=max(0, int(cfg.get("rounds", 3)) - strategy.done_rounds)))


def client_fn(context):
    """The device of this SuperNode: the HAPT user named in its node config (`user=N`)."""
    if "user" not in context.node_config:
        raise ValueError("start the SuperNode with --node-config 'user=N' (the HAPT user whose windows it holds)")
    return make_client(int(context.node_config["user"]), seed=int(context.run_config.get("seed", 0))).to_client()


def write_app(out: str | Path, superlink: str = "127.0.0.1:8000", force: bool = False, **config) -> Path:
    """Copy the Flower App template to the new folder `out`, with the SuperLink's address and
    run config values (keys as in its pyproject.toml, e.g. method="prunefl", rounds=5). An
    earlier App edgeprune wrote there is replaced only with `force`."""
    import re

    from edgeprune.outputs import writing
    src = Path(__file__).with_name("flower_app")
    text = (src / "pyproject.toml").read_text()
    text = text.replace('address = "127.0.0.1:8000"', f'address = "{superlink}"')
    for key, value in config.items():
        key = key.replace("_", "-")
        literal = json.dumps(value) if isinstance(value, str) else str(value)
        text, n = re.subn(rf"^{re.escape(key)} = .*$", lambda _: f"{key} = {literal}", text, flags=re.M)
        if n != 1:
            raise ValueError(f"the Flower App has no run config key {key!r}")
    with writing(out, force=force, kind="flower-app") as tmp:
        (tmp / "edgeprune_app.py").write_bytes((src / "edgeprune_app.py").read_bytes())
        (tmp / "pyproject.toml").write_text(text)
    return Path(out)


def serve(address: str, method: str = "fedavg", rounds: int = 3, min_devices: int = 2, local_epochs: int = 1,
          lr: float = 0.05, prune_ratio: float = 0.5, arch: str = "har_cnn", round_timeout: float | None = 600,
          checkpoint_dir: str | None = None, out: str | None = None, seed: int = 0) -> dict:
    """Run the server until `rounds` rounds are done; returns (and writes to `out`) the history."""
    import flwr

    strategy = make_strategy(method, min_devices, local_epochs, lr, prune_ratio, arch, checkpoint_dir, seed)
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

    logging.getLogger("flwr").setLevel(logging.WARNING)
    client = make_client(user, arch, fault, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start_client(server_address=address, client=client.to_client(), insecure=True, max_retries=30,
                     max_wait_time=120)
