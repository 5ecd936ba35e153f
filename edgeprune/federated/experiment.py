"""A federated experiment on HAPT: every training user (1-21) is a device holding its own
windows (non-IID by nature: people move differently), optionally split into several devices
to reach 30+; accuracy is measured on the held-out users 22-30 after every round."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.federated.client import EdgeClient
from edgeprune.federated.simulation import simulate
from edgeprune.federated.strategy import EdgeStrategy, FedHistory
from edgeprune.zoo import create_model


@dataclass(frozen=True)
class FedConfig:
    method: str = "fedavg"
    rounds: int = 20
    devices_per_user: int = 1  # 2 gives 42 devices from HAPT's 21 training users
    local_epochs: int = 1
    lr: float = 0.05
    fraction_fit: float = 1.0
    prune_ratio: float = 0.5
    perturb: float = 0.1  # memdefense: fraction of each upload withheld
    profiles: tuple[str, ...] = ("rp2040", "stm32l432", "nrf52840", "esp32")  # personal: cycled over devices
    latency_ms: float | None = 200.0  # personal: every device's latency budget
    mia_holdout: float = 0.0  # fraction of each user's windows kept from training, as non-members for the attack
    arch: str = "har_cnn"
    seed: int = 0
    round_timeout: float | None = None
    faults: tuple[tuple[int, str], ...] = ()  # (device index, "drop" | "slow" | "nan" | "shape")


def hapt_devices(cfg: FedConfig) -> tuple[list[EdgeClient], DataLoader, dict]:
    from edgeprune.data import load_hapt
    from edgeprune.data.hapt import DEFAULT_SPLIT

    data = load_hapt()
    kwargs = {"num_classes": data.num_classes}
    faults = dict(cfg.faults)
    clients = []
    for user in list(DEFAULT_SPLIT[0]) + list(DEFAULT_SPLIT[1]):
        x, y = data.user_data(user)
        perm = _user_perm(cfg, user, len(y))[int(cfg.mia_holdout * len(y)):]
        for part in range(cfg.devices_per_user):
            idx = perm[part::cfg.devices_per_user]
            k = len(clients)
            clients.append(EdgeClient(f"user{user}-{part}", x[idx], y[idx], cfg.arch, kwargs, seed=cfg.seed + k,
                                      fault=faults.get(k)))
    xt, yt = data.test()
    return clients, DataLoader(TensorDataset(xt, yt), 512), kwargs


def _user_perm(cfg: FedConfig, user: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + user))


def hapt_holdout(cfg: FedConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The windows of the training users that no device holds (`mia_holdout`), or None."""
    if cfg.mia_holdout <= 0:
        return None
    from edgeprune.data import load_hapt
    from edgeprune.data.hapt import DEFAULT_SPLIT
    data = load_hapt()
    xs, ys = [], []
    for user in list(DEFAULT_SPLIT[0]) + list(DEFAULT_SPLIT[1]):
        x, y = data.user_data(user)
        keep = _user_perm(cfg, user, len(y))[:int(cfg.mia_holdout * len(y))]
        xs.append(x[keep])
        ys.append(y[keep])
    return torch.cat(xs), torch.cat(ys)


def run_federated(cfg: FedConfig, checkpoint_dir: str | Path | None = None) -> FedHistory:
    clients, test, kwargs = hapt_devices(cfg)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, **kwargs)
    example = clients[0].x[:1]
    strategy = EdgeStrategy(cfg.arch, kwargs, model, example, test, cfg.method, cfg.prune_ratio, cfg.local_epochs,
                            cfg.lr, cfg.fraction_fit, min_fit_clients=max(1, int(cfg.fraction_fit * len(clients) // 2)),
                            min_available_clients=len(clients), checkpoint_dir=checkpoint_dir, perturb=cfg.perturb,
                            device_profiles={c.cid: cfg.profiles[i % len(cfg.profiles)] for i, c in enumerate(clients)},
                            latency_ms=cfg.latency_ms)
    history = simulate(clients, strategy, cfg.rounds, cfg.round_timeout)
    from edgeprune.federated.privacy import membership_auc
    g = torch.Generator().manual_seed(cfg.seed)
    mx = torch.cat([c.x for c in clients])
    my = torch.cat([c.y for c in clients])
    pick = torch.randperm(len(my), generator=g)[:2000]
    holdout = hapt_holdout(cfg)  # same users, windows never trained on: the fair non-members
    if holdout is not None:
        nx, ny = holdout
    else:  # otherwise other people's windows (user shift counts towards the attack too)
        nx, ny = next(iter(DataLoader(test.dataset, 2000, shuffle=True, generator=g)))
    history.membership_auc = membership_auc(strategy.model, (mx[pick], my[pick]), (nx, ny))
    return history


def compare(methods: tuple[str, ...], cfg: FedConfig, out: str | Path | None = None) -> dict:
    """The methods side by side on the same devices and seed; JSON and an SVG plot if `out`."""
    from dataclasses import replace
    results = {}
    for m in methods:
        t0 = time.time()
        h = run_federated(replace(cfg, method=m))
        results[m] = {**h.to_dict(), "seconds": time.time() - t0}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "federated.json").write_text(json.dumps(results, indent=1))
        from edgeprune.federated.plot import rounds_svg
        (out / "federated.svg").write_text(rounds_svg(results))
        (out / "summary.md").write_text(summary_table(results, cfg))
    return results


def summary_table(results: dict, cfg: FedConfig) -> str:
    """Markdown: final and best accuracy, traffic, device compute, and the traffic each method
    needed to first come within 1 point of FedAvg's best accuracy."""
    base = results.get("fedavg")
    goal = max(r["accuracy"] for r in base["rounds"]) - 0.01 if base else None
    lines = ["| method | devices | rounds | final accuracy | best | total traffic | per round down / up | "
             "device MACs | rejected | first within 1 pt of FedAvg's best | traffic until then | membership AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        rounds = r["rounds"]
        down = sum(x["bytes_down"] for x in rounds) / len(rounds)
        up = sum(x["bytes_up"] for x in rounds) / len(rounds)
        reach, traffic = "-", "-"
        if goal is not None:
            total = 0
            for x in rounds:
                total += x["bytes_down"] + x["bytes_up"]
                if x["accuracy"] >= goal:
                    reach, traffic = f"round {x['round']}", f"{total / 2 ** 20:.1f} MiB"
                    break
            else:
                reach = "never"
        devices = rounds[0]["accepted"] + rounds[0]["rejected"] + rounds[0]["skipped"] + rounds[0]["failed"]
        lines.append(f"| {m} | {devices} | {len(rounds)} | {100 * rounds[-1]['accuracy']:.2f} % | "
                     f"{100 * max(x['accuracy'] for x in rounds):.2f} % | {r['total_bytes'] / 2 ** 20:.1f} MiB | "
                     f"{down / 2 ** 20:.2f} / {up / 2 ** 20:.2f} MiB | "
                     f"{sum(x['client_macs'] for x in rounds) / 1e9:.1f} G | {len(r['rejected'])} | {reach} | {traffic} | "
                     f"{'-' if r.get('membership_auc') is None else format(r['membership_auc'], '.3f')} |")
    return "\n".join(lines) + "\n"
