"""Server-side strategies on Flower's FedAvg, with traffic and compute accounting, rejection of
bad updates, and a checkpoint every round to resume from after a restart.

- "fedavg": the dense model, float32 both ways (the baseline).
- "pqsu": FL-PQSU (Xu, Fang, Ding, Zou, Xiong, IEEE Access 2021): the global model is pruned
  once before federated training (L1 filter pruning, a fixed ratio, here through edgeprune's
  verified engine), what travels is 8-bit (per-tensor asymmetric min-max) in both directions,
  and a client uploads only when its training loss is below that of its last upload. A device
  that skips counts as an update of zero in the weighted average (the global model is kept for
  its share), so a round with few uploads moves the model only a little.

Every update is checked before aggregation: the number of tensors, every shape, finiteness and
the sample count it claims (edgeprune.federated.robust: capped at a multiple of the round's
median); a bad one is rejected and logged, never averaged. The updates are then combined by a
rule chosen by name (`robust`: the sample-weighted mean, or median, trimmed mean, Krum,
Multi-Krum, Bulyan, norm clipping). Clients that fail or time out are counted."""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from flwr.common import FitIns, Parameters, Scalar, ndarrays_to_parameters
from flwr.server.strategy import FedAvg
from safetensors.torch import load_file, save_file
from torch import nn

from edgeprune.federated.codec import from_parameters, nbytes, to_parameters
from edgeprune.federated.model import build, counter_slots, get_weights, set_weights
from edgeprune.federated.robust import RobustConfig, checked_counts
from edgeprune.federated.robust import aggregate as combine
from edgeprune.metrics import count_macs
from edgeprune.training import evaluate

log = logging.getLogger("edgeprune.federated")
METHODS = ("fedavg", "pqsu", "memdefense", "personal", "gwep", "prunefl")


@dataclass
class RoundRecord:
    round: int
    accuracy: float
    bytes_down: int
    bytes_up: int
    client_macs: int
    accepted: int
    rejected: int
    skipped: int
    failed: int
    client_seconds: float = 0.0  # local training time the devices measured, summed
    excluded: int = 0  # sampled devices left out because the model does not fit their profile


@dataclass
class FedHistory:
    rounds: list[RoundRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each bad update was refused
    corrected: list[str] = field(default_factory=list)  # sample counts the server capped
    membership_auc: float | None = None  # loss-threshold attack on the final model (0.5 = chance)
    upload_membership_auc: float | None = None  # the same attack on each device's last upload, averaged
    upload_calibrated_auc: float | None = None  # on each upload, scored by the loss drop from the sent model

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes_down + r.bytes_up for r in self.rounds)

    def to_dict(self) -> dict:
        return {"rounds": [asdict(r) for r in self.rounds], "rejected": self.rejected, "corrected": self.corrected,
                "total_bytes": self.total_bytes,
                "membership_auc": self.membership_auc, "upload_membership_auc": self.upload_membership_auc,
                "upload_calibrated_auc": self.upload_calibrated_auc}


class EdgeStrategy(FedAvg):
    def __init__(self, arch: str, arch_kwargs: dict, model: nn.Module, example: torch.Tensor, test_loader,
                 method: str = "fedavg", prune_ratio: float = 0.5, local_epochs: int = 1, lr: float = 0.05,
                 fraction_fit: float = 1.0, min_fit_clients: int = 2, min_available_clients: int = 2,
                 checkpoint_dir: str | os.PathLike | None = None, perturb: float = 0.1,
                 device_profiles: dict[str, str] | None = None, latency_ms: float | None = None,
                 up_sparsity: float = 0.8, prunefl_interval: int = 5, defense_tolerance: float = 0.01,
                 prunefl_initial: bool = True, link_mbps: float = 1.0, enforce_profiles: bool = False,
                 robust: RobustConfig | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown federated method {method!r}; choose one of {METHODS}")
        super().__init__(fraction_fit=fraction_fit, fraction_evaluate=0.0, min_fit_clients=min_fit_clients,
                         min_available_clients=min_available_clients)
        self.arch, self.arch_kwargs, self.method = arch, arch_kwargs, method
        self.robust = robust or RobustConfig()
        self.example, self.test_loader = example, test_loader
        self.local_epochs, self.lr = local_epochs, lr
        self.perturb = perturb if method == "memdefense" else 0.0
        self.defense_tolerance = defense_tolerance
        self.bits = 8 if method in ("pqsu", "gwep") else 32
        self.up_sparsity = up_sparsity if method == "gwep" else 0.0
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.history = FedHistory()
        self.done_rounds = 0
        self.plan_json = ""
        self.model = copy.deepcopy(model).eval()
        self.masks: dict[int, np.ndarray] = {}  # prunefl: the mask over prunable weights
        self.mask_version = 0
        if not self._resume() and method == "pqsu":
            self._prune_once(prune_ratio)
        self.macs = count_macs(self.model, example)
        self.device_profiles, self.latency_ms = dict(device_profiles or {}), latency_ms
        # every method: a device takes part only if the model it would train fits its profile
        self.enforce_profiles = enforce_profiles and method != "personal"  # personal sizes each sub-model
        self._fit_cache: dict[tuple[str, str], bool] = {}
        if self.enforce_profiles and self.device_profiles and not any(self._fits(c) for c in self.device_profiles):
            raise ValueError(f"the {method} model fits none of the devices' profiles "
                             f"({sorted(set(self.device_profiles.values()))}); prune it further or use 'personal'")
        self.personal = None
        if method == "personal":
            from edgeprune.federated.personal import Personaliser
            self.personal = Personaliser(self.model, example, device_profiles or {}, latency_ms=latency_ms)
        self._sent: dict[str, object] = {}  # personal: the plan each device was sent this round
        self._sent_json: dict[str, str] = {}
        self._sent_weights: dict[str, list[np.ndarray]] = {}
        self._round_start: list[np.ndarray] = []
        # last round's accepted uploads: (weights, plan JSON, the weights the device started from)
        self.uploads: dict[str, tuple[list[np.ndarray], str, list[np.ndarray]]] = {}
        self.prunefl_interval = prunefl_interval
        self.prunefl_initial, self.link_mbps = prunefl_initial, link_mbps
        self._macs_per_w: list[float] | None = None
        self.client_version: dict[str, int] = {}
        self.start_round = self.done_rounds  # Flower counts rounds from 1 in every server run
        self._pending: dict = {}

    # -- model state ------------------------------------------------------------------
    def _prune_once(self, ratio: float) -> None:
        from edgeprune.api import PruneConfig, prune
        r = prune(self.model, PruneConfig(criterion="l1", prune_ratio=ratio), example_inputs=self.example)
        self.model, self.plan_json = r.model.eval(), json.dumps(r.plan.to_dict())

    def _resume(self) -> bool:
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "state.json").exists():
            return False
        state = json.loads((self.checkpoint_dir / "state.json").read_text())
        self.plan_json = state["plan"]
        self.model = build(self.arch, self.arch_kwargs, self.plan_json).eval()
        tensors = load_file(self.checkpoint_dir / "model.safetensors")
        self.masks = {int(k.split(".")[1]): tensors.pop(k).numpy().astype(bool)
                      for k in list(tensors) if k.startswith("prunefl_mask.")}
        self.mask_version = state.get("mask_version", 0)
        self.model.load_state_dict(tensors)
        self.done_rounds = state["round"]
        self.history = FedHistory([RoundRecord(**r) for r in state["history"]["rounds"]], state["history"]["rejected"])
        log.info("resumed from %s after round %d", self.checkpoint_dir, self.done_rounds)
        return True

    def _checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoint_dir))
        try:  # write both files, then move them into place (a crash leaves the last good pair)
            tensors = {k: v.contiguous() for k, v in self.model.state_dict().items()}
            tensors |= {f"prunefl_mask.{i}": torch.from_numpy(m.astype(np.uint8)) for i, m in self.masks.items()}
            save_file(tensors, tmp / "model.safetensors")
            (tmp / "state.json").write_text(json.dumps({"round": self.done_rounds, "plan": self.plan_json,
                                                        "mask_version": self.mask_version,
                                                        "history": self.history.to_dict()}))
            os.replace(tmp / "model.safetensors", self.checkpoint_dir / "model.safetensors")
            os.replace(tmp / "state.json", self.checkpoint_dir / "state.json")
        finally:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()

    # -- Flower hooks ------------------------------------------------------------------
    def initialize_parameters(self, client_manager) -> Parameters | None:
        return to_parameters(get_weights(self.model), 32)

    def _fits(self, cid: str) -> bool:
        """Whether the global model's int8 cost fits device `cid`'s profile (flash, RAM, latency)."""
        if not self.enforce_profiles or cid not in self.device_profiles:
            return True
        name = self.device_profiles[cid]
        if (name, self.plan_json) not in self._fit_cache:
            from edgeprune.devices import Budget, check_budget, load_profile, model_cost
            profile = load_profile(name)
            checks = check_budget(model_cost(self.model, self.example, profile),
                                  Budget.of(profile, latency_ms=self.latency_ms))
            self._fit_cache[(name, self.plan_json)] = all(c.ok for c in checks)
        return self._fit_cache[(name, self.plan_json)]

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager):
        pairs = super().configure_fit(server_round, parameters, client_manager)
        fitting = [(c, ins) for c, ins in pairs if self._fits(c.cid)]
        self._excluded = len(pairs) - len(fitting)
        pairs = fitting
        config: dict[str, Scalar] = {"round": self.start_round + server_round, "bits": self.bits, "plan": self.plan_json,
                                     "local_epochs": self.local_epochs, "lr": self.lr, "macs_per_sample": self.macs,
                                     "selective": int(self.method == "pqsu"), "perturb": self.perturb,
                                     "defense_tolerance": self.defense_tolerance,
                                     "up_sparsity": self.up_sparsity}
        if self.personal is not None:
            return self._configure_personal(pairs, config)
        if self.method == "prunefl":
            return self._configure_prunefl(pairs, config)
        self._round_start = get_weights(self.model)
        down = to_parameters(self._round_start, self.bits)
        size = nbytes(down) + len(self.plan_json.encode())
        self._pending = {"bytes_down": size * len(pairs)}
        return [(client, FitIns(down, dict(config))) for client, _ in pairs]

    def _prunefl_layout(self):
        from edgeprune.federated import prunefl
        keys = list(self.model.state_dict())
        shapes = [tuple(v.shape) for v in self.model.state_dict().values()]
        return prunefl, keys, shapes, prunefl.prunable_indices(keys, shapes)

    def _configure_prunefl(self, pairs, config):
        prunefl, keys, shapes, idx = self._prunefl_layout()
        if self._macs_per_w is None:
            self._macs_per_w = prunefl.macs_per_weight(self.model, self.example, keys, idx)
        rnd = int(config["round"])
        if self.prunefl_initial and rnd == 1 and not self.masks:  # first stage: one device prunes alone
            down = ndarrays_to_parameters(get_weights(self.model))
            self._round_start = get_weights(self.model)
            self._pending = {"bytes_down": nbytes(down), "initial": True}
            client = pairs[0][0]
            self.client_version[client.cid] = 1  # it will hold the mask it makes
            return [(client, FitIns(down, {**config, "prunefl": 1, "initial": 1, "link_mbps": self.link_mbps,
                                           "macs_per_weight": json.dumps(self._macs_per_w)}))]
        sparse = bool(self.masks) and prunefl.density(self.masks) < prunefl.SPARSE_BELOW
        weights = self._round_start = get_weights(self.model)
        out, total = [], 0
        for client, _ in pairs:
            send = bool(self.masks) and self.client_version.get(client.cid) != self.mask_version
            arrays = prunefl.pack(weights, self.masks if sparse else None, send)
            down = ndarrays_to_parameters(arrays)  # masks travel as packed uint8
            total += nbytes(down)
            out.append((client, FitIns(down, {**config, "prunefl": 1, "mask_version": self.mask_version,
                                              "mask_sent": int(send), "sparse": int(sparse),
                                              "collect_grad": int(rnd % self.prunefl_interval == 0)})))
            self.client_version[client.cid] = self.mask_version
        self._pending = {"bytes_down": total, "sparse": sparse, "collect": rnd % self.prunefl_interval == 0}
        return out

    def _aggregate_prunefl(self, results):
        prunefl, keys, shapes, idx = self._prunefl_layout()
        if self._pending.get("initial"):
            return self._adopt_initial(results, prunefl, keys, shapes, idx)
        sparse, collect = self._pending.get("sparse", False), self._pending.get("collect", False)
        accepted, weights, grads, rejected = [], [], [], []
        for client, res in results:
            from flwr.common import parameters_to_ndarrays
            arrays = parameters_to_ndarrays(res.parameters)
            try:
                want = len(keys) + (len(idx) if collect else 0)
                if len(arrays) != want:
                    raise ValueError(f"{len(arrays)} tensors, expected {want}")
                dense = prunefl.unpack(arrays[:len(keys)], shapes, self.masks if sparse else None)
                g2 = arrays[len(keys):]
                if any(a.shape != shapes[i] for a, i in zip(g2, idx)):
                    raise ValueError("squared gradients do not match the prunable weights")
                if not all(np.isfinite(a).all() for a in dense + list(g2)):
                    raise ValueError("non-finite values")
            except Exception as exc:  # noqa: BLE001
                rejected.append(f"client {client.cid}: {exc}")
                continue
            accepted.append(dense)
            weights.append(res.num_examples)
            grads.append(g2)
            self.uploads[client.cid] = (dense, self.plan_json, self._round_start)
        cids = list(self.uploads)
        counts, refused = self._checked(cids, weights)
        rejected += refused
        keep = [i for i, n in enumerate(counts) if n > 0]
        for i in set(range(len(cids))) - set(keep):
            self.uploads.pop(cids[i], None)
        accepted, weights, grads = [accepted[i] for i in keep], [counts[i] for i in keep], [grads[i] for i in keep]
        if accepted:
            total = float(sum(weights))
            avg = combine(get_weights(self.model), accepted, weights, self.robust, counter_slots(self.model))
            if collect and grads:
                g2 = [sum(g[k] for g in grads) / len(grads) for k in range(len(idx))]
                seconds = sum(float(r.metrics.get("seconds", 0.0)) for _, r in results)
                macs = sum(int(r.metrics.get("macs", 0)) for _, r in results)
                times = None
                if seconds > 0 and macs > 0:  # measured seconds per MAC of the devices' training
                    times = prunefl.weight_times(self._macs_per_w, int(total / len(accepted) * self.local_epochs),
                                                 seconds / macs, self.link_mbps)
                self.masks = prunefl.adjust(avg, g2, self.masks, idx, times=times)
                self.mask_version += 1
            for i, m in self.masks.items():
                avg[i] = avg[i] * m
            set_weights(self.model, [np.asarray(a, dtype=np.float32) for a in avg])
        return len(accepted), rejected

    def _adopt_initial(self, results, prunefl, keys, shapes, idx):
        """The initially pruned model and its mask from the one device that made them."""
        from flwr.common import parameters_to_ndarrays
        for client, res in results:
            arrays = parameters_to_ndarrays(res.parameters)
            try:
                if len(arrays) != len(keys) + len(idx):
                    raise ValueError(f"{len(arrays)} tensors, expected {len(keys) + len(idx)}")
                dense = prunefl.unpack(arrays[:len(keys)], shapes, None)
                masks = prunefl.read_masks(arrays[len(keys):], shapes, idx)
                if not all(np.isfinite(a).all() for a in dense):
                    raise ValueError("non-finite values")
            except Exception as exc:  # noqa: BLE001
                return 0, [f"client {client.cid} (initial pruning): {exc}"]
            self.masks, self.mask_version = masks, 1
            set_weights(self.model, [a * masks[i] if i in masks else a for i, a in enumerate(dense)])
            self.uploads[client.cid] = (dense, self.plan_json, self._round_start)
            log.info("initial pruning on %s: density %.3f", client.cid, prunefl.density(masks))
            return 1, []
        return 0, []

    def _configure_personal(self, pairs, config):
        from edgeprune.federated.model import build
        from edgeprune.metrics import count_macs as macs_of
        self.personal.rerank()
        out, total = [], 0
        self._sent = {}
        for client, _ in pairs:
            weights, plan, plan_json = self.personal.submodel(client.cid)
            self._sent_weights[client.cid] = weights
            down = to_parameters(weights, self.bits)
            sub_macs = macs_of(build(self.arch, self.arch_kwargs, plan_json), self.example)
            total += nbytes(down) + len(plan_json.encode())
            self._sent[client.cid] = plan
            self._sent_json[client.cid] = plan_json
            out.append((client, FitIns(down, {**config, "plan": plan_json, "macs_per_sample": sub_macs})))
        self._pending = {"bytes_down": total}
        return out

    def aggregate_fit(self, server_round: int, results, failures):
        rnd = self.start_round + server_round
        self.uploads = {}
        self._pending["seconds"] = sum(float(res.metrics.get("seconds", 0.0)) for _, res in results)
        if self.method == "prunefl":
            up = sum(nbytes(res.parameters) for _, res in results)
            macs = sum(int(res.metrics.get("macs", 0)) for _, res in results)
            n_ok, rejected = self._aggregate_prunefl(results)
            for why in rejected:
                self.history.rejected.append(f"round {rnd}, {why}")
                log.warning("rejected update: round %d, %s", rnd, why)
            return self._end_round(rnd, up, macs, n_ok, len(rejected), 0, len(failures))
        ref = [w.shape for w in get_weights(self.model)]
        up, macs, skipped, rejected = 0, 0, 0, 0
        entries = []  # (cid, arrays or None where the device skipped, reported samples)
        for client, res in results:
            up += nbytes(res.parameters)
            macs += int(res.metrics.get("macs", 0))
            if int(res.metrics.get("skipped", 0)):
                skipped += 1
                entries.append((client.cid, None, res.num_examples))
                continue
            try:
                if self.up_sparsity > 0:
                    from flwr.common import parameters_to_ndarrays

                    from edgeprune.federated.codec import decode_sparse
                    arrays = decode_sparse(parameters_to_ndarrays(res.parameters), ref)
                else:
                    arrays = from_parameters(res.parameters, self.bits)
                if self.personal is not None:
                    ref = self.personal.expected_shapes(self._sent[client.cid])
                if len(arrays) != len(ref) or any(a.shape != s for a, s in zip(arrays, ref)):
                    raise ValueError(f"shapes {[a.shape for a in arrays][:3]}... do not match the global model")
                if not all(np.isfinite(a).all() for a in arrays):
                    raise ValueError("non-finite values")
            except Exception as exc:  # noqa: BLE001 - any malformed update is refused, not averaged
                rejected += 1
                why = f"round {rnd}, client {client.cid}: {exc}"
                self.history.rejected.append(why)
                log.warning("rejected update: %s", why)
                continue
            entries.append((client.cid, arrays, res.num_examples))
        counts, refused = self._checked([e[0] for e in entries], [e[2] for e in entries])
        for why in refused:
            self.history.rejected.append(f"round {rnd}, {why}")
        kept = [(cid, arrays, n) for (cid, arrays, _), n in zip(entries, counts) if n > 0]
        accepted = [(cid, arrays, n) for cid, arrays, n in kept if arrays is not None]
        rejected += sum(1 for (_, arrays, _), n in zip(entries, counts) if n == 0 and arrays is not None)
        for cid, arrays, _ in accepted:
            self.uploads[cid] = (arrays, self._sent_json.get(cid, self.plan_json),
                                 self._sent_weights.get(cid, self._round_start))
        current = get_weights(self.model)
        if accepted and self.personal is not None:
            updates = [(arrays, self._sent[cid], n) for cid, arrays, n in accepted]
            set_weights(self.model, self.personal.aggregate(updates, self.robust))
        elif accepted:  # a device that skipped (FL-PQSU) keeps the global model for its share
            pool = [arrays if arrays is not None else current for _, arrays, _ in kept]
            set_weights(self.model, combine(current, pool, [n for _, _, n in kept], self.robust,
                                            counter_slots(self.model)))
        return self._end_round(rnd, up, macs, len(accepted), rejected, skipped, len(failures))

    def _checked(self, cids: list[str], counts: list) -> tuple[list[int], list[str]]:
        """The sample counts the server will use (0: refused) and why any was refused; capped
        counts are logged in history.corrected (edgeprune.federated.robust.checked_counts)."""
        fixed, notes = checked_counts(counts, self.robust.count_cap)
        refused = []
        for i, why in notes:
            note = f"client {cids[i]}: {why}"
            if fixed[i] == 0:
                refused.append(note)
                log.warning("rejected update: %s", note)
            else:
                self.history.corrected.append(note)
                log.warning("sample count: %s", note)
        return fixed, refused

    def _end_round(self, rnd: int, up: int, macs: int, accepted: int, rejected: int, skipped: int, failed: int):
        acc = evaluate(self.model, self.test_loader)
        self.history.rounds.append(RoundRecord(rnd, acc, self._pending.get("bytes_down", 0), up, macs, accepted,
                                               rejected, skipped, failed, self._pending.get("seconds", 0.0),
                                               getattr(self, "_excluded", 0)))
        self.done_rounds = rnd
        self._checkpoint()
        log.info("round %d: accuracy %.4f, %d accepted, %d rejected, %d skipped, %d failed", rnd, acc, accepted,
                 rejected, skipped, failed)
        return to_parameters(get_weights(self.model), 32), {"accuracy": acc}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []
