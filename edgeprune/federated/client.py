"""A device in the federation: a Flower NumPyClient holding its own data.

Each round it receives the global model (its architecture as a PrunePlan JSON in the config,
its weights in the chosen encoding), trains `local_epochs` on its data, and answers with its
weights in the same encoding, the number of samples, its training loss and the MACs it spent.
With `selective` (FL-PQSU), it sends its update only when its training loss is lower than at
its last upload; otherwise it answers with no weights and `skipped = 1`. With `perturb`
(MemDefense, reconstruction) it prunes its update against membership inference before
uploading, using its `reference` samples (kept out of training). With `prunefl` it trains
under the server's mask (and, once, runs PruneFL's initial pruning when asked). It reports its
MACs and its measured training seconds.

`fault` injects the failures the server must survive: "drop" (raises: the device vanished),
"slow" (sleeps `slow_seconds` before answering), "nan" (an update full of NaN), "shape" (an
update with a wrong shape), and the poisoning attacks of ATTACKS: "huge" (finite weights of
1e30), "signflip" (its update reversed and scaled by SIGN_FLIP_SCALE: w0 - 4 (w - w0), as in
the sign-flipping attack of Li et al. 2019, RSA), "inflate" (an honest update claiming
INFLATED_COUNT samples), "labelflip" (trains on labels C-1-y: data poisoning, Tolpegin et al.
2020)."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import torch
from flwr.client import NumPyClient
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.federated.codec import decode, encode
from edgeprune.federated.model import build, get_weights, set_weights

ATTACKS = ("huge", "signflip", "inflate", "labelflip")
FAULTS = ("drop", "slow", "nan", "shape") + ATTACKS
SIGN_FLIP_SCALE = 4.0
INFLATED_COUNT = 10 ** 9


def poison(weights: list[np.ndarray], received: list[np.ndarray], attack: str | None) -> list[np.ndarray]:
    """What an attacking device uploads instead of its trained `weights`."""
    if attack == "huge":
        return [np.full_like(w, 1e30) for w in weights]
    if attack == "signflip":
        return [r - SIGN_FLIP_SCALE * (w - r) for w, r in zip(weights, received)]
    return weights


class EdgeClient(NumPyClient):
    def __init__(self, cid: str, x: torch.Tensor, y: torch.Tensor, arch: str, arch_kwargs: dict,
                 batch_size: int = 32, seed: int = 0, fault: str | None = None, slow_seconds: float = 2.0,
                 reference: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.cid, self.arch, self.arch_kwargs = cid, arch, arch_kwargs
        self.x, self.y = x, y
        self.reference = reference  # MemDefense: windows kept out of training, as local non-members
        self.batch_size, self.seed = batch_size, seed
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")
        self.fault, self.slow_seconds = fault, slow_seconds
        self.last_upload_loss = math.inf
        self.num_classes = int(arch_kwargs.get("num_classes", int(y.max()) + 1 if len(y) else 1))

    def fit(self, parameters, config):
        if self.fault == "drop":
            raise ConnectionError(f"device {self.cid} dropped out")
        if int(config.get("prunefl", 0)):
            return self._fit_prunefl(parameters, config)
        bits = int(config.get("bits", 32))
        model = build(self.arch, self.arch_kwargs, str(config.get("plan", "")))
        received = decode(parameters, bits)
        set_weights(model, received)
        t0 = time.perf_counter()
        loss, n = self._train(model, config)
        metrics = {"loss": loss, "macs": int(config.get("macs_per_sample", 0)) * 3 * n,  # fwd + bwd ~ 3x fwd
                   "seconds": time.perf_counter() - t0, "skipped": 0}
        if self.fault == "slow":
            time.sleep(self.slow_seconds)
        if int(config.get("selective", 0)) and loss >= self.last_upload_loss:
            return [], len(self.y), {**metrics, "skipped": 1}
        self.last_upload_loss = loss
        perturb = float(config.get("perturb", 0.0))
        if perturb > 0:  # MemDefense (reconstruction): prune what serves the attack more than accuracy
            from edgeprune.federated.privacy import memdefense
            if self.reference is None:
                raise RuntimeError(f"device {self.cid} has no reference samples for MemDefense")
            start = build(self.arch, self.arch_kwargs, str(config.get("plan", "")))
            set_weights(start, received)
            chosen = memdefense(model, (self.x, self.y), self.reference, perturb,
                                float(config.get("defense_tolerance", 0.01)), start=start)
            metrics["defense_fraction"] = chosen["fraction"]
            metrics["macs"] += int(config.get("macs_per_sample", 0)) * chosen["passes"]
        weights = poison(get_weights(model), received, self.fault)
        if self.fault == "nan":
            weights = [np.full_like(w, np.nan) for w in weights]
        elif self.fault == "shape":
            weights = [np.zeros((w.shape[0] + 1,) + w.shape[1:], dtype=w.dtype) if w.ndim else w for w in weights]
        if float(config.get("up_sparsity", 0.0)) > 0:  # GWEP: prune + quantise what goes up
            from edgeprune.federated.codec import encode_sparse
            return encode_sparse(weights, float(config["up_sparsity"])), self._count(), metrics
        return encode(weights, bits), self._count(), metrics

    def _count(self) -> int:
        """The sample count this device reports (an inflating attacker lies)."""
        return INFLATED_COUNT if self.fault == "inflate" else len(self.y)

    def _train(self, model, config, after_backward=None, after_step=None) -> tuple[float, int]:
        """Local epochs of SGD on this device's data; returns (mean loss, samples seen)."""
        g = torch.Generator().manual_seed(self.seed + int(config.get("round", 0)))
        y = self.num_classes - 1 - self.y if self.fault == "labelflip" else self.y
        loader = DataLoader(TensorDataset(self.x, y), self.batch_size, shuffle=True, generator=g)
        opt = torch.optim.SGD(model.parameters(), lr=float(config.get("lr", 0.05)), momentum=0.9)
        model.train()
        total, n = 0.0, 0
        for _ in range(int(config.get("local_epochs", 1))):
            for xb, yb in loader:
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                if after_backward is not None:
                    after_backward()
                opt.step()
                if after_step is not None:
                    after_step()
                total += loss.item() * len(yb)
                n += len(yb)
        return total / max(n, 1), n

    def _fit_prunefl(self, parameters, config):
        """PruneFL's device side: train under the server's mask, send kept values (sparse mode)
        and, on adjustment rounds, the squared gradients of every weight."""
        from edgeprune.federated import prunefl
        model = build(self.arch, self.arch_kwargs, str(config.get("plan", "")))
        keys = list(model.state_dict())
        shapes = [tuple(v.shape) for v in model.state_dict().values()]
        idx = prunefl.prunable_indices(keys, shapes)
        if int(config.get("initial", 0)):
            return self._initial_pruning(model, parameters, config, prunefl, idx, shapes)
        version = int(config.get("mask_version", 0))
        if int(config.get("mask_sent", 0)):
            self.masks = prunefl.read_masks(parameters[len(keys):], shapes, idx)
            self.mask_version = version
        masks = getattr(self, "masks", None) if version else None
        if version and getattr(self, "mask_version", -1) != version:
            raise RuntimeError(f"device {self.cid} lacks mask version {version}")
        sparse = int(config.get("sparse", 0))
        set_weights(model, prunefl.unpack(parameters[:len(keys)], shapes, masks if sparse else None))
        named = dict(model.named_parameters())
        mask_t = {keys[i]: torch.from_numpy(m) for i, m in (masks or {}).items()}
        grad2 = {keys[i]: torch.zeros(shapes[i]) for i in idx}

        def after_backward() -> None:
            for k in grad2:
                grad2[k] += named[k].grad.detach() ** 2

        def after_step() -> None:
            with torch.no_grad():
                for k, m in mask_t.items():
                    named[k].mul_(m)
        t0 = time.perf_counter()
        loss, n = self._train(model, config, after_backward, after_step)
        seconds = time.perf_counter() - t0
        received = prunefl.unpack(parameters[:len(keys)], shapes, masks if sparse else None)
        weights = poison(get_weights(model), received, self.fault)
        out = prunefl.pack(weights, masks if sparse else None, False)
        if int(config.get("collect_grad", 0)):
            out += [grad2[keys[i]].numpy() for i in idx]
        macs = int(config.get("macs_per_sample", 0)) * 3 * n
        return out, self._count(), {"loss": loss, "macs": macs, "seconds": seconds, "skipped": 0}

    def _initial_pruning(self, model, parameters, config, prunefl, idx, shapes):
        """PruneFL's first stage on this device; sends the dense weights and the mask it made."""
        set_weights(model, parameters)
        lr = float(config.get("lr", 0.05))
        macs = int(config.get("macs_per_sample", 0))
        t0 = time.perf_counter()
        self._train(model, {"local_epochs": 1, "lr": lr, "round": 0})  # one pass to measure its speed
        spm = (time.perf_counter() - t0) / max(1, 3 * macs * len(self.y))
        per_w = json.loads(str(config.get("macs_per_weight", "[]")))
        times = prunefl.weight_times(per_w, len(self.y) * int(config.get("local_epochs", 1)), spm,
                                     float(config.get("link_mbps", 1.0))) if per_w else None
        masks, passes = prunefl.initial_pruning(model, self.x, self.y, idx, lr, self.batch_size, seed=self.seed,
                                                times=times)
        masks = masks or {i: np.ones(shapes[i], dtype=bool) for i in idx}  # never reached the accuracy to prune
        self.masks, self.mask_version = masks, 1
        out = prunefl.pack(get_weights(model), None, False) + [np.packbits(masks[i].reshape(-1)) for i in sorted(masks)]
        return out, len(self.y), {"loss": 0.0, "macs": macs * 3 * len(self.y) * (passes + 1),
                                  "seconds": time.perf_counter() - t0, "skipped": 0, "initial_passes": passes}

    def evaluate(self, parameters, config):
        bits = int(config.get("bits", 32))
        model = build(self.arch, self.arch_kwargs, str(config.get("plan", ""))).eval()
        set_weights(model, decode(parameters, bits))
        with torch.no_grad():
            out = model(self.x)
            loss = float(torch.nn.functional.cross_entropy(out, self.y))
            acc = float((out.argmax(1) == self.y).float().mean())
        return loss, len(self.y), {"accuracy": acc}
