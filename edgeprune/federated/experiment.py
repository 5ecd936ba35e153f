"""Federated experiments. On HAPT (the default) every training user (1-21) is a device holding
its own windows (non-IID by nature: people move differently), optionally split into several
devices to reach 30+; accuracy is measured on the held-out users 22-30 after every round. On
MNIST, Fashion-MNIST or CIFAR-10 the training images are partitioned over `devices` devices,
IID or by a Dirichlet(`alpha`) draw of each class's share per device (the usual non-IID
benchmark partition, Hsu, Qi, Brown 2019); accuracy is measured on the test images."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.errors import ConfigError
from edgeprune.federated.client import EdgeClient
from edgeprune.federated.privacy import block_split
from edgeprune.federated.robust import RobustConfig
from edgeprune.federated.simulation import simulate
from edgeprune.federated.strategy import EdgeStrategy, FedHistory
from edgeprune.zoo import create_model

DATASETS = ("hapt", "mnist", "fashion_mnist", "cifar10")
DEFAULT_ARCH = {"hapt": "har_cnn", "mnist": "lenet5", "fashion_mnist": "lenet5", "cifar10": "resnet8"}
Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class FedConfig:
    method: str = "fedavg"
    rounds: int = 20
    devices_per_user: int = 1  # 2 gives 42 devices from HAPT's 21 training users
    local_epochs: int = 1
    lr: float = 0.05
    fraction_fit: float = 1.0
    prune_ratio: float = 0.5
    perturb: float = 0.3  # memdefense: largest fraction of the weights whose local update may be pruned
    profiles: tuple[str, ...] = ("rp2040", "stm32l432", "nrf52840", "esp32")  # personal: cycled over devices
    latency_ms: float | None = 200.0  # personal (and enforce_profiles): every device's latency budget
    enforce_profiles: bool = False  # every method: devices whose profile cannot hold the model sit out
    mia_holdout: float = 0.0  # fraction of each user's windows kept from training, as non-members for the attack
    defense_reference: float = 0.1  # memdefense: fraction of each device's windows kept as its reference set
    defense_tolerance: float = 0.01  # memdefense: reference accuracy the pruning may cost
    arch: str | None = None  # default: har_cnn (HAPT), lenet5 (MNIST, Fashion-MNIST), resnet8 (CIFAR-10)
    dataset: str = "hapt"
    devices: int = 10  # image datasets: how many devices share the training images
    partition: str = "iid"  # image datasets: "iid" or "dirichlet"
    alpha: float = 0.5  # dirichlet: smaller = each device holds fewer classes
    limit: int | None = None  # image datasets: use this many training (and test) images
    npz: str | None = None  # image datasets: a local .npz copy instead of torchvision's files
    data_root: str = "~/.cache/edgeprune"
    download: bool = False
    seed: int = 0
    round_timeout: float | None = None
    faults: tuple[tuple[int, str], ...] = ()  # (device index, a fault of edgeprune.federated.client.FAULTS)
    aggregation: str = "mean"  # edgeprune.federated.robust.RULES
    count_cap: float = 4.0  # sample counts capped at this many times the round's median (0: off)
    attack: str | None = None  # edgeprune.federated.client.ATTACKS, run by `attackers` devices
    attackers: int = 0  # how many devices (drawn with the seed) attack


    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.partition not in ("iid", "dirichlet"):
            raise ConfigError(f"partition must be 'iid' or 'dirichlet', got {self.partition!r}")
        if self.devices < 1 or self.devices_per_user < 1 or self.alpha <= 0:
            raise ConfigError("devices and devices_per_user must be >= 1 and alpha > 0")
        if not 0 <= self.mia_holdout < 1 or not 0 <= self.defense_reference < 1:
            raise ConfigError("mia_holdout and defense_reference are fractions in [0, 1)")
        from edgeprune.federated.client import ATTACKS
        from edgeprune.federated.robust import RobustConfig
        RobustConfig(self.aggregation, self.count_cap)  # checks the names and values
        if self.attackers and self.attack not in ATTACKS:
            raise ConfigError(f"attackers need an attack, one of {ATTACKS}")
        if self.attackers < 0:
            raise ConfigError("attackers must be >= 0")

    def device_faults(self, n_devices: int) -> dict[int, str]:
        """Device index -> fault: the listed faults, and `attackers` devices drawn with the seed."""
        if self.attackers > n_devices:
            raise ConfigError(f"{self.attackers} attackers but only {n_devices} devices")
        faults = dict(self.faults)
        picked = torch.randperm(n_devices, generator=torch.Generator().manual_seed(self.seed + 7919))
        for k in picked[:self.attackers].tolist():
            faults[k] = self.attack
        return faults

    @property
    def model_name(self) -> str:
        return self.arch or DEFAULT_ARCH[self.dataset]


def make_devices(cfg: FedConfig) -> tuple[list[EdgeClient], DataLoader, dict, dict[str, Pair]]:
    """The devices, the test loader, the model's kwargs, and per device the non-members a
    membership attack may use (samples of its distribution no device trained on; empty
    without `mia_holdout`)."""
    if cfg.dataset == "hapt":
        data = _hapt()
        clients, test, kwargs = hapt_devices(cfg, data)
        by_user = hapt_holdout_by_user(cfg, data)
        return clients, test, kwargs, {c.cid: by_user[int(c.cid[4:].split("-")[0])] for c in clients if by_user}
    return image_devices(cfg)


def image_devices(cfg: FedConfig) -> tuple[list[EdgeClient], DataLoader, dict, dict[str, Pair]]:
    from edgeprune.data import load_image_dataset
    data = load_image_dataset(cfg.dataset, cfg.data_root, npz=cfg.npz, download=cfg.download, limit=cfg.limit)
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(data.y_train), generator=g)
    n_held = int(cfg.mia_holdout * len(order))
    held, pool = order[:n_held], order[n_held:]
    parts = partition(data.y_train[pool], cfg.devices, cfg.partition, cfg.alpha, g)
    if min(len(p) for p in parts) == 0:
        raise ConfigError(f"a device got no images ({cfg.devices} devices, alpha {cfg.alpha}): use fewer devices, "
                          "a larger alpha or more images")
    kwargs = {"num_classes": data.num_classes} | ({"in_channels": data.x_train.shape[1]}
                                                  if cfg.model_name == "lenet5" else {})
    reference = cfg.defense_reference if cfg.method == "memdefense" else 0.0
    faults = cfg.device_faults(len(parts))
    clients, nonmembers = [], {}
    for k, part in enumerate(parts):
        idx = pool[part]
        n_ref = int(round(reference * len(idx)))
        train, ref = idx[n_ref:], idx[:n_ref]
        c = EdgeClient(f"device{k}", data.x_train[train], data.y_train[train], cfg.model_name, kwargs,
                       seed=cfg.seed + k, fault=faults.get(k),
                       reference=(data.x_train[ref], data.y_train[ref]) if n_ref else None)
        clients.append(c)
        if n_held:
            pick = _label_matched(data.y_train[held], c.y, g)
            nonmembers[c.cid] = (data.x_train[held[pick]], data.y_train[held[pick]])
    return clients, DataLoader(TensorDataset(data.x_test, data.y_test), 512), kwargs, nonmembers


def partition(y: torch.Tensor, devices: int, how: str, alpha: float, g: torch.Generator) -> list[torch.Tensor]:
    """Positions of `y` for each device: an even random split ("iid"), or per class a
    Dirichlet(alpha) share per device ("dirichlet")."""
    if how == "iid":
        return list(torch.randperm(len(y), generator=g).tensor_split(devices))
    import numpy as np
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=g)))
    parts: list[list[torch.Tensor]] = [[] for _ in range(devices)]
    for c in torch.unique(y):
        pos = torch.nonzero(y == c).flatten()
        pos = pos[torch.randperm(len(pos), generator=g)]
        share = torch.from_numpy(rng.dirichlet(np.full(devices, float(alpha))))
        cuts = (share.cumsum(0) * len(pos)).round().long()[:-1]
        for k, chunk in enumerate(pos.tensor_split(cuts)):
            parts[k].append(chunk)
    return [torch.cat(p)[torch.randperm(sum(len(q) for q in p), generator=g)] for p in parts]


def _label_matched(pool_y: torch.Tensor, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Positions in `pool_y`, as many as `like` has (at most the pool), drawn with `like`'s label mix."""
    classes = int(max(pool_y.max(), like.max())) + 1
    want = torch.bincount(like, minlength=classes).float() / len(like)
    have = torch.bincount(pool_y, minlength=classes).float().clamp(min=1)
    w = want[pool_y] / have[pool_y]
    n = min(len(like), int((w > 0).sum()))
    return torch.multinomial(w, n, replacement=False, generator=g)


def hapt_devices(cfg: FedConfig, data=None) -> tuple[list[EdgeClient], DataLoader, dict]:
    data = _hapt() if data is None else data
    kwargs = {"num_classes": data.num_classes}
    splits = _user_splits(cfg, data)
    faults = cfg.device_faults(len(splits) * cfg.devices_per_user)
    reference = cfg.defense_reference if cfg.method == "memdefense" else 0.0
    clients = []
    for user, (kept, _) in splits.items():
        x, y = data.user_data(user)
        for part in range(cfg.devices_per_user):
            idx = kept[(kept // BLOCK) % cfg.devices_per_user == part]  # whole blocks per device
            k = len(clients)
            train, ref = block_split(len(idx), reference, torch.Generator().manual_seed(cfg.seed + 1000 + k))
            clients.append(EdgeClient(f"user{user}-{part}", x[idx[train]], y[idx[train]], cfg.model_name, kwargs,
                                      seed=cfg.seed + k, fault=faults.get(k),
                                      reference=(x[idx[ref]], y[idx[ref]]) if len(ref) else None))
    xt, yt = data.test()
    return clients, DataLoader(TensorDataset(xt, yt), 512), kwargs


BLOCK = 10  # windows per block of the splits (consecutive windows overlap by half)


def _hapt():
    from edgeprune.data import load_hapt
    return load_hapt()


def _user_splits(cfg: FedConfig, data) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per training user: (positions devices may hold, positions held out for the attack)."""
    from edgeprune.data.hapt import DEFAULT_SPLIT
    return {user: block_split(int((data.user == user).sum()), cfg.mia_holdout,
                              torch.Generator().manual_seed(cfg.seed + user), BLOCK)
            for user in list(DEFAULT_SPLIT[0]) + list(DEFAULT_SPLIT[1])}


def hapt_holdout_by_user(cfg: FedConfig, data=None) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The windows of each training user that no device holds (`mia_holdout`); empty if none."""
    if cfg.mia_holdout <= 0:
        return {}
    data = _hapt() if data is None else data
    out = {}
    for user, (_, held) in _user_splits(cfg, data).items():
        x, y = data.user_data(user)
        out[user] = (x[held], y[held])
    return out


def hapt_holdout(cfg: FedConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """All held-out windows of the training users together, or None."""
    by_user = hapt_holdout_by_user(cfg)
    if not by_user:
        return None
    return torch.cat([x for x, _ in by_user.values()]), torch.cat([y for _, y in by_user.values()])


def run_federated(cfg: FedConfig, checkpoint_dir: str | Path | None = None) -> FedHistory:
    clients, test, kwargs, nonmembers = make_devices(cfg)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model_name, **kwargs)
    example = clients[0].x[:1]
    strategy = EdgeStrategy(cfg.model_name, kwargs, model, example, test, cfg.method, cfg.prune_ratio,
                            cfg.local_epochs, cfg.lr, cfg.fraction_fit,
                            min_fit_clients=max(1, int(cfg.fraction_fit * len(clients) // 2)),
                            min_available_clients=len(clients), checkpoint_dir=checkpoint_dir, perturb=cfg.perturb,
                            device_profiles={c.cid: cfg.profiles[i % len(cfg.profiles)] for i, c in enumerate(clients)},
                            latency_ms=cfg.latency_ms, defense_tolerance=cfg.defense_tolerance,
                            enforce_profiles=cfg.enforce_profiles,
                            robust=RobustConfig(cfg.aggregation, cfg.count_cap))
    history = simulate(clients, strategy, cfg.rounds, cfg.round_timeout)
    _attack(cfg, clients, strategy, test, history, nonmembers)
    return history


def _attack(cfg: FedConfig, clients: list[EdgeClient], strategy: EdgeStrategy, test: DataLoader,
            history: FedHistory, nonmembers: dict[str, Pair]) -> None:
    """Loss-threshold membership inference by a curious server: on the final global model
    (members: 2,000 samples of the devices) and, with `mia_holdout`, on each device's last upload
    (members: that device's samples; non-members: held-out samples of its distribution), plain
    and calibrated by the loss under the model the server sent."""
    from edgeprune.federated.model import build, set_weights
    from edgeprune.federated.privacy import calibrated_membership_auc, membership_auc
    g = torch.Generator().manual_seed(cfg.seed)
    mx = torch.cat([c.x for c in clients])
    my = torch.cat([c.y for c in clients])
    pick = torch.randperm(len(my), generator=g)[:2000]
    if nonmembers:  # same distribution, never trained on: the fair non-members
        nx = torch.cat([x for x, _ in nonmembers.values()])
        ny = torch.cat([y for _, y in nonmembers.values()])
        sub = torch.randperm(len(ny), generator=g)[:2000]
        nx, ny = nx[sub], ny[sub]
    else:  # otherwise test samples (for HAPT other people's windows: user shift counts towards the attack)
        nx, ny = next(iter(DataLoader(test.dataset, 2000, shuffle=True, generator=g)))
    history.membership_auc = membership_auc(strategy.model, (mx[pick], my[pick]), (nx, ny))
    plain, calibrated = [], []
    for c in clients:
        if c.cid not in strategy.uploads or c.cid not in nonmembers:
            continue
        arrays, plan_json, start = strategy.uploads[c.cid]
        local, before = build(cfg.model_name, strategy.arch_kwargs, plan_json), build(cfg.model_name, strategy.arch_kwargs, plan_json)
        set_weights(local, arrays)
        set_weights(before, start)
        plain.append(membership_auc(local, (c.x, c.y), nonmembers[c.cid]))
        calibrated.append(calibrated_membership_auc(local, before, (c.x, c.y), nonmembers[c.cid]))
    if plain:
        history.upload_membership_auc = sum(plain) / len(plain)
        history.upload_calibrated_auc = sum(calibrated) / len(calibrated)


def compare(methods: tuple[str, ...], cfg: FedConfig, out: str | Path | None = None, merge: bool = False,
            force: bool = False) -> dict:
    """The methods side by side on the same devices and seed; JSON and an SVG plot if `out`
    (with `merge`, the methods already in out/federated.json stay beside the new runs). An
    earlier edgeprune output in `out` is replaced only with `force` or `merge`."""
    from dataclasses import replace

    from edgeprune.outputs import check_output, writing
    from edgeprune.safe_json import read_json
    results = {}
    replace_kind = "federated" if merge else None
    if out is not None:
        check_output(out, force=force, replace_kind=replace_kind)
    if merge and out is not None and (Path(out) / "federated.json").exists():
        old = read_json(Path(out) / "federated.json", what="federated results")
        if not isinstance(old, dict):
            raise ConfigError(f"{out}/federated.json is not a results object; --merge needs one edgeprune wrote")
        results = {m: r for m, r in old.items() if m not in methods}
    for m in methods:
        t0 = time.time()
        h = run_federated(replace(cfg, method=m))
        results[m] = {**h.to_dict(), "seconds": time.time() - t0}
    if out is not None:
        from edgeprune.federated.plot import rounds_svg
        with writing(out, force=force, replace_kind=replace_kind, kind="federated") as tmp:
            (tmp / "federated.json").write_text(json.dumps(results, indent=1))
            (tmp / "federated.svg").write_text(rounds_svg(results))
            (tmp / "summary.md").write_text(summary_table(results, cfg))
    return results


AUC_KEYS = ("membership_auc", "upload_membership_auc", "upload_calibrated_auc")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def summary_table(results: dict, cfg: FedConfig) -> str:
    """Markdown: final and best accuracy, traffic, device compute, and the traffic each method
    needed to first come within 1 point of FedAvg's best accuracy."""
    base = results.get("fedavg")
    goal = max(r["accuracy"] for r in base["rounds"]) - 0.01 if base else None
    lines = ["| method | devices | rounds | final accuracy | best | total traffic | per round down / up | "
             "device MACs | device training time | rejected | first within 1 pt of FedAvg's best | traffic until then | "
             "attack AUC: global / upload / calibrated |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
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
        r0 = rounds[-1]
        devices = r0["accepted"] + r0["rejected"] + r0["skipped"] + r0["failed"]
        if r0.get("excluded"):
            devices = f"{devices} (+{r0['excluded']} too small)"
        lines.append(f"| {m} | {devices} | {len(rounds)} | {100 * rounds[-1]['accuracy']:.2f} % | "
                     f"{100 * max(x['accuracy'] for x in rounds):.2f} % | {r['total_bytes'] / 2 ** 20:.1f} MiB | "
                     f"{down / 2 ** 20:.2f} / {up / 2 ** 20:.2f} MiB | "
                     f"{sum(x['client_macs'] for x in rounds) / 1e9:.1f} G | "
                     f"{sum(x.get('client_seconds', 0.0) for x in rounds):.0f} s | {len(r['rejected'])} | {reach} | "
                     f"{traffic} | {' / '.join(_fmt(r.get(k)) for k in AUC_KEYS)} |")
    return "\n".join(lines) + "\n"
