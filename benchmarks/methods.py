"""Pruning methods side by side: same base model, budget, fine-tuning budget and seeds, with
Torch-Pruning and torch.nn.utils.prune as baselines in the same run, and the final pruned
architecture trained from scratch for the same total epochs (Liu et al. 2019, "Rethinking
the value of network pruning").

    python -m benchmarks.methods                      # HAPT, har_cnn, 3 seeds
    python -m benchmarks.methods --task mnist --model lenet5 --npz PATH/mnist.npz
    python -m benchmarks.methods --task cifar10 --model resnet8 --npz PATH/cifar10.npz

Per seed: train the base model for E epochs; every structured method prunes it to
`keep_macs` of its MACs and is fine-tuned for F epochs (search methods spend their own
search budget on top, reported); "Taylor reallocation" trains from scratch to the rate in one
run of E + F epochs; "scratch" trains the architecture found by L1 pruning from random
weights for E + F epochs. Unstructured methods reach `sparsity` of the conv/linear weights
and are fine-tuned for F epochs with the masks held. Accuracy is on the test split; figures
are mean ± std over seeds. Writes a markdown table and a Pareto plot (SVG) into docs/."""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from edgeprune.api import PruneConfig, prune
from benchmarks import mean_spread, write_doc
from edgeprune.metrics import count_macs, count_params
from edgeprune.training import TrainConfig, evaluate, train
from edgeprune.workflow import calibration_batches, load_task
from edgeprune.zoo import create_model


def _cfg(epochs: int, seed: int, lr: float = 2e-3) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False)


def _criterion(name: str):
    def run(base, task, a, seed):
        data = calibration_batches(task, 512)
        r = prune(base, PruneConfig(criterion=name, keep_macs=a.keep_macs, seed=seed),
                  example_inputs=torch.randn(1, *task.input_shape), data=data)
        train(r.model, task.train, task.val, _cfg(a.finetune, seed, 1e-3))
        return r.model
    return run


def _search(method: str):
    def run(base, task, a, seed):
        from edgeprune.search.run import SearchOptions, search_prune
        opts = SearchOptions(episodes=a.amc_episodes, warmup=a.amc_episodes // 3, cycles=a.abc_cycles,
                             search_epochs=max(1, a.finetune // 2), progress=False)
        r, _, _ = search_prune(base, task, method, a.keep_macs, "macs", _cfg(a.finetune, seed, 1e-3), opts, seed)
        return r.model
    return run


def _taylor_reallocation(base, task, a, seed):
    from edgeprune.methods import TaylorReallocationConfig, train_to_rate
    torch.manual_seed(seed)
    fresh = create_model(a.model, num_classes=task.num_classes)
    small, _ = train_to_rate(fresh, task.train, task.val, torch.randn(1, *task.input_shape),
                             _cfg(a.epochs + a.finetune, seed), TaylorReallocationConfig(target=a.keep_macs))
    return small


def _scratch(base, task, a, seed):
    r = prune(base, PruneConfig(criterion="l1", keep_macs=a.keep_macs, seed=seed),
              example_inputs=torch.randn(1, *task.input_shape))
    torch.manual_seed(seed + 1000)
    model = r.model
    for m in model.modules():  # same architecture, random weights
        if hasattr(m, "reset_parameters") and m is not model:
            m.reset_parameters()
    train(model, task.train, task.val, _cfg(a.epochs + a.finetune, seed))
    return model


def _torch_pruning(base, task, a, seed):
    import torch_pruning as tp
    x = torch.randn(1, *task.input_shape)
    base_macs = count_macs(base, x)
    last = [m for m in base.modules() if isinstance(m, nn.Linear)][-1:]

    def at(ratio: float) -> nn.Module:
        m = copy.deepcopy(base).eval()
        last_m = [mm for mm in m.modules() if isinstance(mm, nn.Linear)][-1:] if last else []
        tp.pruner.MagnitudePruner(m, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
                                  ignored_layers=last_m).step()
        return m
    lo, hi = 0.0, 0.95
    for _ in range(12):  # the uniform ratio that meets the MACs budget
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count_macs(at(mid), x) <= a.keep_macs * base_macs else (mid, hi)
    model = at(hi)
    train(model, task.train, task.val, _cfg(a.finetune, seed, 1e-3))
    return model


def _sparse(method: str):
    def run(base, task, a, seed):
        from edgeprune.sparsify import sparsify
        model = copy.deepcopy(base)
        sparsify(model, method, a.sparsity, task, a.finetune, lr=1e-3, seed=seed)
        return model
    return run


def _torch_prune_unstructured(base, task, a, seed):
    import torch.nn.utils.prune as tprune
    model = copy.deepcopy(base)
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=a.sparsity)
    train(model, task.train, task.val, _cfg(a.finetune, seed, 1e-3))
    for m, name in params:
        tprune.remove(m, name)
    return model


STRUCTURED = {"L1 (Li et al.)": _criterion("l1"), "FPGM": _criterion("fpgm"), "Taylor": _criterion("taylor"),
              "APoZ": _criterion("apoz"), "AMC (DDPG)": _search("amc"), "ABCPruner": _search("abc"),
              "DSA": _search("dsa"), "Taylor reallocation (one run)": _taylor_reallocation,
              "Torch-Pruning 1.x, L1": _torch_pruning, "scratch (L1 architecture)": _scratch}
UNSTRUCTURED = {"torch.nn.utils.prune global L1": _torch_prune_unstructured, "global magnitude": _sparse("magnitude"),
                "LAMP": _sparse("lamp"), "GMP (cubic)": _sparse("gmp"), "DNS": _sparse("dns"), "DPF": _sparse("dpf")}


def _sparsity(model: nn.Module) -> float:
    w = [m.weight for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    return sum(int((x == 0).sum()) for x in w) / sum(x.numel() for x in w)


def _versus(r: dict, scratch: dict | None) -> str:
    if scratch is None or r["kind"] != "structured" or r is scratch:
        return ""
    diff = statistics.mean(r["acc"]) - statistics.mean(scratch["acc"])
    noise = ((statistics.pstdev(r["acc"]) ** 2 + statistics.pstdev(scratch["acc"]) ** 2) / 2) ** 0.5
    verdict = "better" if diff > noise else ("worse" if diff < -noise else "within noise")
    return f"{100 * diff:+.1f} ({verdict})"


def pareto_svg(points: list[tuple[str, float, float, bool]], title: str) -> str:
    """Accuracy (y) against kept MACs (x, log scale) per method, numbered, with a legend; the
    Pareto front is joined."""
    import math
    W, H, L, B, PW = 900, 420, 60, 50, 560  # PW: plot width; the legend is on the right
    xs = [p[1] for p in points]
    ys = [p[2] for p in points]
    x0, x1 = math.log10(min(xs) * 0.8), math.log10(max(xs) * 1.25)
    y0, y1 = min(ys) - 0.01, min(1.0, max(ys) + 0.01)
    fx = lambda v: L + (math.log10(v) - x0) / (x1 - x0) * (PW - L)  # noqa: E731
    fy = lambda v: H - B - (v - y0) / (y1 - y0) * (H - B - 30)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>', f'<text x="{W / 2}" y="18" text-anchor="middle" '
           f'font-size="13">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{PW}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="30" stroke="black"/>',
           f'<text x="{(L + PW) / 2}" y="{H - 12}" text-anchor="middle">kept MACs (fraction of the dense model, log scale)</text>',
           f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">test accuracy (%)</text>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        out.append(f'<text x="{L - 6}" y="{fy(v) + 4:.1f}" text-anchor="end">{100 * v:.1f}</text>')
    for v in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0):
        if x0 <= math.log10(v) <= x1:
            out.append(f'<text x="{fx(v):.1f}" y="{H - B + 14}" text-anchor="middle">{v:g}</text>')
    front = sorted((p for p in points if not any(q[1] <= p[1] and q[2] > p[2] for q in points)), key=lambda p: p[1])
    if len(front) > 1:
        out.append('<polyline fill="none" stroke="#999" stroke-dasharray="4 3" points="'
                   + " ".join(f"{fx(p[1]):.1f},{fy(p[2]):.1f}" for p in front) + '"/>')
    for i, (name, x, y, ours) in enumerate(points):
        colour = "#1f77b4" if ours else "#d62728"
        out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{fx(x) + 5 + 12 * (i % 3):.1f}" y="{fy(y) - 5:.1f}" fill="{colour}">{i + 1}</text>')
        out.append(f'<text x="{PW + 20}" y="{40 + 16 * i}" fill="{colour}">{i + 1}. {name} '
                   f'({100 * y:.1f} %, {x:.3f})</text>')
    out.append("</svg>")
    return "\n".join(out)


def run(a) -> list[dict]:
    task = load_task(a.task, npz=a.npz, limit=a.limit)
    x = torch.randn(1, *task.input_shape)
    methods = {**({} if a.skip_structured else STRUCTURED), **({} if a.skip_unstructured else UNSTRUCTURED)}
    if a.methods:
        methods = {k: v for k, v in methods.items() if any(m.lower() in k.lower() for m in a.methods)}
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        methods.pop("Torch-Pruning 1.x, L1", None)
        print("torch-pruning not installed (pip install -e '.[compare]'): its baseline is left out")
    results: dict[str, list[dict]] = {"dense": []}
    for seed in a.seeds:
        torch.manual_seed(seed)
        base = create_model(a.model, num_classes=task.num_classes)
        t0 = time.time()
        train(base, task.train, task.val, _cfg(a.epochs, seed))
        results["dense"].append({"acc": evaluate(base, task.test), "macs": 1.0, "params": 1.0, "sparsity": 0.0,
                                 "seconds": time.time() - t0})
        base_macs, base_params = count_macs(base, x), count_params(base)
        print(f"seed {seed}: dense {results['dense'][-1]['acc']:.4f}", flush=True)
        for name, fn in methods.items():
            t0 = time.time()
            model = fn(base, task, a, seed).eval()
            row = {"acc": evaluate(model, task.test), "macs": count_macs(model, x) / base_macs,
                   "params": count_params(model) / base_params, "sparsity": _sparsity(model),
                   "seconds": time.time() - t0}
            results.setdefault(name, []).append(row)
            print(f"  {name:34} acc {row['acc']:.4f}  MACs {row['macs']:.3f}  params {row['params']:.3f}  "
                  f"sparsity {row['sparsity']:.3f}  ({row['seconds']:.0f} s)", flush=True)
    rows = []
    for name, rs in results.items():
        kind = "dense" if name == "dense" else ("unstructured" if name in UNSTRUCTURED else "structured")
        rows.append({"method": name, "kind": kind, "acc": [r["acc"] for r in rs],
                     "macs": statistics.mean(r["macs"] for r in rs), "params": statistics.mean(r["params"] for r in rs),
                     "sparsity": statistics.mean(r["sparsity"] for r in rs),
                     "seconds": statistics.mean(r["seconds"] for r in rs)})
    _write(a, rows, task)
    return rows


def _write(a, rows: list[dict], task) -> None:
    stem = f"methods_{a.task}_{a.model}"
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = next((r for r in rows if r["method"].startswith("scratch")), None)
    lines = [f"# Methods side by side: {a.model} on {a.task}", "",
             f"Command: `python -m benchmarks.methods --task {a.task} --model {a.model}"
             f"{' --npz ' + Path(a.npz).name if a.npz else ''} --epochs {a.epochs} --finetune {a.finetune} "
             f"--keep-macs {a.keep_macs} --sparsity {a.sparsity} --seeds {' '.join(map(str, a.seeds))}"
             f"{' --limit ' + str(a.limit) if a.limit else ''}` (2 CPU cores; one run, all methods in it).", "",
             f"Base: {a.epochs} training epochs; each method: {a.finetune} fine-tuning epochs; structured budget "
             f"{a.keep_macs:.0%} of the MACs; unstructured {a.sparsity:.0%} of the conv/linear weights. "
             f"Accuracy on the test split, mean ± std over {len(a.seeds)} seeds. Seconds per seed include search, "
             "pruning, fine-tuning (and for one-run and scratch methods, all of their training).", "",
             "| method | kind | test accuracy (%) | kept MACs | kept params | weight sparsity | s / seed | "
             "vs scratch (points) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['kind']} | {mean_spread(r['acc'])} | {r['macs']:.3f} | {r['params']:.3f} | "
                     f"{r['sparsity']:.3f} | {r['seconds']:.0f} | {_versus(r, scratch)} |")
    lines += ["", "vs scratch: mean difference to training the L1 architecture from scratch for the same total "
              "epochs; *better* / *worse* only when it exceeds the pooled spread of the two, else *within noise*. "
              "Compare at equal kept MACs: a method under the budget has a smaller network.",
              "", f"![accuracy against MACs]({stem}.svg)", "",
              "Structured methods and scratch compare at the same MACs; unstructured methods keep the dense MACs "
              "(their zeros pay off through sparse storage and kernels), so they are in the table but not on the plot."]
    (out_dir / f"{stem}.svg").write_text(_plot(rows, a.model, a.task))
    (out_dir / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    write_doc(out_dir / f"{stem}.md", lines)


def _plot(rows: list[dict], model: str, task: str) -> str:
    points = [(r["method"], r["macs"], statistics.mean(r["acc"]),
               not r["method"].startswith(("Torch-Pruning", "torch.nn", "scratch")))
              for r in rows if r["kind"] != "unstructured"]
    return pareto_svg(points, f"{model} on {task}: accuracy against MACs (blue: edgeprune, red: baselines)")


def replot(json_path: str | Path) -> Path:
    """Redraw a benchmark's SVG from its JSON (methods_<task>_<model>.json)."""
    path = Path(json_path)
    task, model = path.stem.removeprefix("methods_").split("_", 1) if not path.stem.startswith("methods_fashion") \
        else ("fashion_mnist", path.stem.removeprefix("methods_fashion_mnist_"))
    out = path.with_suffix(".svg")
    out.write_text(_plot(json.loads(path.read_text()), model, task))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="pruning methods side by side, with baselines and training from scratch")
    p.add_argument("--task", default="hapt")
    p.add_argument("--model", default="har_cnn")
    p.add_argument("--npz", help="local copy of an image dataset (mnist, fashion_mnist, cifar10)")
    p.add_argument("--limit", type=int, help="use the first N training/test images (time budget)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--finetune", type=int, default=3)
    p.add_argument("--keep-macs", type=float, default=0.25)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--amc-episodes", type=int, default=60)
    p.add_argument("--abc-cycles", type=int, default=2)
    p.add_argument("--methods", nargs="*", help="substrings of method names to run (default: all)")
    p.add_argument("--skip-structured", action="store_true")
    p.add_argument("--skip-unstructured", action="store_true")
    p.add_argument("--out-dir", default="docs")
    p.add_argument("--replot", nargs="*", help="only redraw the plots of these JSON result files")
    a = p.parse_args(argv)
    if a.replot:
        for path in a.replot:
            print(replot(path))
        return
    run(a)


if __name__ == "__main__":
    main()
