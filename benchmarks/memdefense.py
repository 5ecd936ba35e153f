"""Privacy against accuracy of pruning perturbations on a device's upload (MemDefense and controls).

One federated round is reproduced on a few devices: a global model is trained on the other
devices' data (`--global-epochs`), each device trains `--local-epochs` on its own samples, and
its upload is then perturbed in one of three ways at growing strengths:

- memdefense (update): edgeprune.federated.privacy.memdefense pruning the local update
  (weights reset to the received model), its reconstruction's default;
- memdefense (zero): the same selection, weights set to zero;
- random (update): the same number of randomly chosen weights reset to the received model.

For each, the curious server's loss-threshold attack on the upload (plain, and calibrated by the
loss under the received model) is measured against the device's members and held-out
non-members of its distribution, with the upload's accuracy on the test set. Output: a
markdown table and an SVG (accuracy against calibrated AUC).

    python -m benchmarks.memdefense --data cifar10 --npz ../shared/data/cifar10/cifar10_jpeg.npz \\
        --limit 5000 --out docs/memdefense
"""
from __future__ import annotations

import argparse
import copy
import json
from html import escape
from pathlib import Path

import torch

from edgeprune.federated.client import EdgeClient
from edgeprune.federated.experiment import FedConfig, make_devices
from edgeprune.federated.privacy import (
    accuracy,
    calibrated_membership_auc,
    kernel_weights,
    membership_auc,
    memdefense,
)
from edgeprune.zoo import create_model

KINDS = ("memdefense (update)", "memdefense (zero)", "random (update)")
COLOURS = {"none": "#000000", KINDS[0]: "#1f77b4", KINDS[1]: "#d62728", KINDS[2]: "#7f7f7f"}


@torch.no_grad()
def _random_update_pruning(model, start, fraction: float, g: torch.Generator) -> None:
    for w, s in zip(kernel_weights(model), kernel_weights(start)):
        pick = torch.rand(w.shape, generator=g) < fraction
        w[pick] = s[pick]


def run(a) -> dict:
    cfg = FedConfig(method="memdefense", dataset=a.data, npz=a.npz, limit=a.limit, devices=a.devices,
                    mia_holdout=a.holdout, defense_reference=a.reference, seed=a.seed)
    clients, test, kwargs, nonmembers = make_devices(cfg)
    xt, yt = test.dataset.tensors
    rows: dict[str, list[list[dict]]] = {k: [[] for _ in a.fractions] for k in KINDS}
    base = []
    for d in range(a.trials):
        torch.manual_seed(a.seed + d)
        dev = clients[d]
        others = [c for c in clients if c is not dev]
        start = create_model(cfg.model_name, **kwargs)
        pool = EdgeClient("pool", torch.cat([c.x for c in others]), torch.cat([c.y for c in others]),
                          cfg.model_name, kwargs, seed=a.seed)
        pool._train(start, {"local_epochs": a.global_epochs, "lr": a.lr})
        local = copy.deepcopy(start)
        dev._train(local, {"local_epochs": a.local_epochs, "lr": a.lr})
        members, non = (dev.x, dev.y), nonmembers[dev.cid]

        def score(m) -> dict:
            return {"auc": membership_auc(m, members, non), "calibrated": calibrated_membership_auc(m, start, members, non),
                    "accuracy": accuracy(m.eval(), xt, yt)}
        base.append(score(local))
        for j, f in enumerate(a.fractions):
            for kind in KINDS:
                m = copy.deepcopy(local)
                if kind == KINDS[2]:
                    _random_update_pruning(m, start, f, torch.Generator().manual_seed(a.seed + d))
                else:
                    memdefense(m, members, dev.reference, f, steps=(1.0,), search=False,
                               start=start if kind == KINDS[0] else None)
                rows[kind][j].append(score(m))
        print(f"device {d}: done", flush=True)
    mean = lambda xs, k: sum(x[k] for x in xs) / len(xs)  # noqa: E731
    out = {"none": {k: mean(base, k) for k in ("auc", "calibrated", "accuracy")},
           "curves": {kind: [{"fraction": f, **{k: mean(rows[kind][j], k) for k in ("auc", "calibrated", "accuracy")}}
                             for j, f in enumerate(a.fractions)] for kind in KINDS},
           "setup": vars(a) | {"npz": str(a.npz), "out": str(a.out)}}
    return out


def table(res: dict) -> str:
    n = res["none"]
    lines = ["| perturbation | fraction of weights | attack AUC | calibrated AUC | test accuracy |", "|---|---|---|---|---|",
             f"| none | 0 | {n['auc']:.3f} | {n['calibrated']:.3f} | {100 * n['accuracy']:.1f} % |"]
    for kind, pts in res["curves"].items():
        for p in pts:
            lines.append(f"| {kind} | {p['fraction']:g} | {p['auc']:.3f} | {p['calibrated']:.3f} | "
                         f"{100 * p['accuracy']:.1f} % |")
    return "\n".join(lines) + "\n"


def svg(res: dict) -> str:
    W, H, L, B, T = 520, 340, 60, 40, 30
    pts = [res["none"]] + [p for c in res["curves"].values() for p in c]
    x_lo, x_hi = min(p["calibrated"] for p in pts) - 0.01, max(p["calibrated"] for p in pts) + 0.01
    y_lo, y_hi = min(p["accuracy"] for p in pts) - 0.01, max(p["accuracy"] for p in pts) + 0.01
    fx = lambda v: L + (v - x_lo) / (x_hi - x_lo) * (W - L - 20)  # noqa: E731
    fy = lambda v: H - B - (v - y_lo) / (y_hi - y_lo) * (H - B - T)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{L}" y="18" font-size="13">test accuracy against calibrated attack AUC (left = more private)</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="{T}" stroke="black"/>',
           f'<text x="{(L + W) / 2}" y="{H - 8}" text-anchor="middle">calibrated membership AUC of the upload</text>']
    for k in range(5):
        xv, yv = x_lo + (x_hi - x_lo) * k / 4, y_lo + (y_hi - y_lo) * k / 4
        out.append(f'<text x="{fx(xv):.1f}" y="{H - B + 14}" text-anchor="middle">{xv:.2f}</text>')
        out.append(f'<text x="{L - 6}" y="{fy(yv) + 4:.1f}" text-anchor="end">{100 * yv:.0f} %</text>')
    n = res["none"]
    for i, (kind, curve) in enumerate(res["curves"].items()):
        line = [n] + curve
        pts_s = " ".join(f"{fx(p['calibrated']):.1f},{fy(p['accuracy']):.1f}" for p in line)
        out.append(f'<polyline fill="none" stroke="{COLOURS[kind]}" stroke-width="1.8" points="{pts_s}"/>')
        out += [f'<circle cx="{fx(p["calibrated"]):.1f}" cy="{fy(p["accuracy"]):.1f}" r="3" fill="{COLOURS[kind]}"/>'
                for p in curve]
        out.append(f'<text x="{L + 10}" y="{T + 14 * (i + 1)}" fill="{COLOURS[kind]}">{escape(kind)}</text>')
    out.append(f'<circle cx="{fx(n["calibrated"]):.1f}" cy="{fy(n["accuracy"]):.1f}" r="4" fill="black"/>')
    out.append(f'<text x="{fx(n["calibrated"]) - 6:.1f}" y="{fy(n["accuracy"]) - 6:.1f}" text-anchor="end">no defence</text>')
    out.append("</svg>")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cifar10", choices=["hapt", "mnist", "fashion_mnist", "cifar10"])
    p.add_argument("--npz", help="local .npz copy of the image dataset")
    p.add_argument("--limit", type=int, default=5000)
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--trials", type=int, default=3, help="devices whose uploads are perturbed (results averaged)")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of the data kept as non-members")
    p.add_argument("--reference", type=float, default=0.1, help="fraction of each device's data kept as reference")
    p.add_argument("--global-epochs", type=int, default=4)
    p.add_argument("--local-epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1, 0.3])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    res = run(a)
    print(table(res))
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "memdefense.json").write_text(json.dumps(res, indent=1))
        (a.out / "memdefense.md").write_text(table(res))
        (a.out / "memdefense.svg").write_text(svg(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
