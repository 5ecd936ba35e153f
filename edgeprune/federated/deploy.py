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

from edgeprune.errors import ConfigError
from edgeprune.federated.client import EdgeClient
from edgeprune.federated.robust import RobustConfig
from edgeprune.federated.strategy import EdgeStrategy
from edgeprune.zoo import create_model


def make_strategy(method: str = "fedavg", min_devices: int = 2, local_epochs: int = 1, lr: float = 0.05,
                  prune_ratio: float = 0.5, arch: str = "har_cnn", checkpoint_dir: str | None = None,
                  seed: int = 0, aggregation: str = "mean", count_cap: float = 4.0) -> EdgeStrategy:
    """The server's strategy on HAPT (accuracy on the held-out users 22-30 every round)."""
    from edgeprune.data import load_hapt

    data = load_hapt()
    kwargs = {"num_classes": data.num_classes}
    xt, yt = data.test()
    torch.manual_seed(seed)
    return EdgeStrategy(arch, kwargs, create_model(arch, **kwargs), xt[:1], DataLoader(TensorDataset(xt, yt), 512),
                        method, prune_ratio, local_epochs, lr, min_fit_clients=min_devices,
                        min_available_clients=min_devices, checkpoint_dir=checkpoint_dir,
                        robust=RobustConfig(aggregation, count_cap))


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
                             seed=int(cfg.get("seed", 0)), aggregation=str(cfg.get("aggregation", "mean")),
                             count_cap=float(cfg.get("count-cap", 4.0)))
    return ServerAppComponents(strategy=strategy,
                               config=ServerConfig(num_rounds=max(0, int(cfg.get("rounds", 3)) - strategy.done_rounds)))


def client_fn(context):
    """The device of this SuperNode: the HAPT user named in its node config (`user=N`)."""
    if "user" not in context.node_config:
        raise ValueError("start the SuperNode with --node-config 'user=N' (the HAPT user whose windows it holds)")
    return make_client(int(context.node_config["user"]), seed=int(context.run_config.get("seed", 0))).to_client()


CONNECTION = "edgeprune"  # the SuperLink connection's name in the App's Flower config


def write_app(out: str | Path, superlink: str = "127.0.0.1:8000", force: bool = False,
              root_certificates: str | Path | None = None, insecure: bool = False, **config) -> Path:
    """Write a Flower App to the new folder `out`: the App (pyproject.toml with the run config
    values, keys as in its template, e.g. method="prunefl", rounds=5; edgeprune_app.py) and
    `flower/config.toml`, Flower's settings with the SuperLink connection "edgeprune": TLS
    checked against `root_certificates` (the CA that signed the SuperLink's certificate), or,
    only when asked with `insecure=True`, plain text for a local test. An earlier App edgeprune
    wrote there is replaced only with `force`."""
    import re

    from edgeprune.outputs import writing
    if (root_certificates is None) == (not insecure):
        raise ConfigError("give the CA certificate the SuperLink's TLS certificate is signed with "
                          "(--root-certificates ca.crt, see `edgeprune federated certs`), or --insecure for a "
                          "test on this machine only")
    if root_certificates is not None:
        from edgeprune.federated.tls import read_pem
        read_pem(root_certificates, "--root-certificates")
    src = Path(__file__).with_name("flower_app")
    text = (src / "pyproject.toml").read_text()
    for key, value in config.items():
        key = key.replace("_", "-")
        literal = json.dumps(value) if isinstance(value, str) else str(value)
        text, n = re.subn(rf"^{re.escape(key)} = .*?(  #.*)?$", lambda m: f"{key} = {literal}{m.group(1) or ''}",
                          text, flags=re.M)
        if n != 1:
            raise ValueError(f"the Flower App has no run config key {key!r}")
    link = (f'root-certificates = {json.dumps(str(Path(root_certificates).expanduser().resolve()))}'
            if root_certificates is not None else "insecure = true  # plain text: for a test on one machine only")
    flower = (f'# Flower settings for this deployment: FLWR_HOME={Path(out)}/flower, or copy the table below\n'
              f'# into ~/.flwr/config.toml\n[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
              f'address = {json.dumps(superlink)}\n{link}\n')
    with writing(out, force=force, kind="flower-app") as tmp:
        (tmp / "edgeprune_app.py").write_bytes((src / "edgeprune_app.py").read_bytes())
        (tmp / "pyproject.toml").write_text(text)
        (tmp / "flower").mkdir()
        (tmp / "flower" / "config.toml").write_text(flower)
    return Path(out)


def serve(address: str, method: str = "fedavg", rounds: int = 3, min_devices: int = 2, local_epochs: int = 1,
          lr: float = 0.05, prune_ratio: float = 0.5, arch: str = "har_cnn", round_timeout: float | None = 600,
          checkpoint_dir: str | None = None, out: str | None = None, seed: int = 0,
          certificates: tuple[str, str, str] | None = None, insecure: bool = False, aggregation: str = "mean",
          count_cap: float = 4.0) -> dict:
    """Run the server until `rounds` rounds are done; returns (and writes to `out`) the history.
    `certificates` = (CA certificate, server certificate, server key) files for TLS; plain text
    only with `insecure=True`."""
    import flwr

    from edgeprune.federated.tls import read_pem
    if (certificates is None) == (not insecure):
        raise ConfigError("give the server's TLS files (--ssl-ca-certfile, --ssl-certfile, --ssl-keyfile; "
                          "`edgeprune federated certs` makes them), or --insecure for a test on this machine only")
    certs = None
    if certificates is not None:
        certs = tuple(read_pem(p, what) for p, what in zip(certificates, ("--ssl-ca-certfile", "--ssl-certfile",
                                                                         "--ssl-keyfile")))
    strategy = make_strategy(method, min_devices, local_epochs, lr, prune_ratio, arch, checkpoint_dir, seed,
                             aggregation, count_cap)
    remaining = rounds - strategy.done_rounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if remaining > 0:
            flwr.server.start_server(server_address=address, strategy=strategy, certificates=certs,
                                     config=flwr.server.ServerConfig(num_rounds=remaining, round_timeout=round_timeout))
    result = strategy.history.to_dict()
    if out:
        from edgeprune.outputs import write_file
        write_file(out, json.dumps(result, indent=1), force=True, owned=_is_history(out), flag="--history")
    return result


def _is_history(path: str | Path) -> bool:
    """True for a history file `serve` wrote (so a resumed server may replace it)."""
    from edgeprune.errors import EdgePruneError
    from edgeprune.safe_json import read_json
    try:
        data = read_json(path, "history")
    except EdgePruneError:
        return False
    return isinstance(data, dict) and {"rounds", "rejected", "total_bytes"} <= set(data)


def device(address: str, user: int, arch: str = "har_cnn", fault: str | None = None, seed: int = 0,
           root_certificates: str | None = None, insecure: bool = False) -> None:
    """Connect one device (HAPT user `user`'s windows) and train when the server asks; TLS
    checked against `root_certificates`, plain text only with `insecure=True`."""
    from flwr.compat.client.app import start_client

    from edgeprune.federated.tls import read_pem
    if (root_certificates is None) == (not insecure):
        raise ConfigError("give the CA certificate the server's TLS certificate is signed with "
                          "(--root-certificates ca.crt), or --insecure for a test on this machine only")
    root = read_pem(root_certificates, "--root-certificates")
    logging.getLogger("flwr").setLevel(logging.WARNING)
    client = make_client(user, arch, fault, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start_client(server_address=address, client=client.to_client(), insecure=insecure, root_certificates=root,
                     max_retries=30, max_wait_time=120)
