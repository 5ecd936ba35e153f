"""The engine's own cost: trace + group + prune, with and without checks, beside Torch-Pruning
(optional comparison dependency `torch-pruning`) in the same run. Each case runs in its own
process (one thread pool of 2) so peak memory (max RSS) is per case.

    python -m benchmarks.engine --models resnet50 mobilenet_v2 densenet121 vit_b_16
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path


def _model(name: str):
    import torch
    import torchvision

    m = torchvision.models.get_model(name).eval()
    return m, torch.randn(1, 3, 224, 224)


def _classifier_names(model) -> list:
    import torch

    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return last[-1:]


def case_edgeprune(name: str) -> dict:
    import torch

    import edgeprune as ep
    from edgeprune.pruning import prune_steps

    model, x = _model(name)
    cfg = ep.PruneConfig(prune_ratio=0.5)
    t0 = time.perf_counter()
    step, _ = prune_steps(model, x, cfg, 0.5, {}, [], check=False)
    engine = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked, _ = prune_steps(model, x, cfg, 0.5, {}, [], check=True)
    with_checks = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune_steps(model, x, ep.PruneConfig(prune_ratio=0.5, check_dtype="float32"), 0.5, {}, [], check=True)
    with_checks32 = time.perf_counter() - t0
    try:  # without checks nothing repairs code that hard-codes a width
        with torch.no_grad():
            ok = tuple(step.model(x).shape) == tuple(model(x).shape)
    except RuntimeError:
        ok = False
    return {"engine_s": engine, "with_checks_s": with_checks, "with_checks32_s": with_checks32, "runs": ok, "verified": checked.check is not None
            and checked.check.failure is None,
            "params_kept": sum(p.numel() for p in step.model.parameters()) / sum(p.numel() for p in model.parameters())}


def case_torch_pruning(name: str) -> dict:
    import torch
    import torch_pruning as tp

    model, x = _model(name)
    ref_shape = tuple(model(x).shape)
    t0 = time.perf_counter()
    try:
        pruner = tp.pruner.MagnitudePruner(model, x, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=0.5, ignored_layers=_classifier_names(model))
        pruner.step()
    except Exception as exc:
        return {"engine_s": time.perf_counter() - t0, "runs": False, "error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    engine = time.perf_counter() - t0
    try:
        with torch.no_grad():
            ok = tuple(model(x).shape) == ref_shape
    except Exception as exc:
        return {"engine_s": engine, "runs": False, "error": f"forward: {type(exc).__name__}: {str(exc)[:120]}"}
    return {"engine_s": engine, "runs": ok}


def _one(tool: str, name: str) -> dict:
    import torch

    torch.set_num_threads(2)
    fn = case_edgeprune if tool == "edgeprune" else case_torch_pruning
    row = fn(name)
    row["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


MEMORY_CAP_BYTES = 20 * 1024 ** 3  # a case that needs more fails cleanly instead of taking the machine


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def run_engine_benchmark(models: list[str], out: str | Path, timeout: int = 1800) -> int:
    try:
        import torch_pruning  # noqa: F401
        tools = ["edgeprune", "torch_pruning"]
    except ImportError:
        print("torch-pruning is not installed (pip install torch-pruning==1.6.1): edgeprune only", file=sys.stderr)
        tools = ["edgeprune"]
    results = {}
    for name in models:
        for tool in tools:
            try:
                proc = subprocess.run([sys.executable, "-m", "benchmarks.engine", tool, name],
                                      capture_output=True, text=True, timeout=timeout,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"}, preexec_fn=_cap_memory)
            except subprocess.TimeoutExpired:
                results[(tool, name)] = {"error": f"timeout after {timeout} s"}
                print(name, tool, results[(tool, name)], flush=True)
                continue
            line = (proc.stdout.strip().splitlines() or [""])[-1]
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
            if "can't allocate memory" in err or "Cannot allocate memory" in err:
                err = "out of memory (20 GiB cap)"
            results[(tool, name)] = json.loads(line) if line.startswith("{") else {"error": err}
            print(name, tool, results[(tool, name)], flush=True)
    write_table(results, models, out)
    return 0


def write_table(results: dict, models: list[str], out: str | Path) -> None:
    lines = ["# Engine benchmark: trace + group + prune", "",
             f"Command: `python -m benchmarks.engine --models {' '.join(models)}` "
             f"({platform.machine()}, {os.cpu_count()} cores, torch {__import__('torch').__version__}, batch 1, "
             "224x224, 50 % of channels, L1, each case in its own process capped at 20 GiB of data memory, "
             "wall-clock seconds of the first call in a fresh process).", "",
             "`edgeprune` = trace, coupling, scoring and surgery without checks (what Torch-Pruning does); "
             "`+ checks` = the same with every plan replayed op by op against the masked original in float64 "
             "and repaired where needed (what `edgeprune.prune` runs; `check_dtype=\"float32\"` checks in float32 with a "
             "1e-4 relative tolerance). Torch-Pruning 1.6.1: "
             "`MagnitudePruner(pruning_ratio=0.5)` + `step()` with the last Linear ignored, its defaults otherwise.", "",
             "| model | edgeprune s | + checks (float64) s | + checks (float32) s | edgeprune max RSS MB | edgeprune result | Torch-Pruning s | Torch-Pruning max RSS MB | Torch-Pruning result |",
             "|---|---|---|---|---|---|---|---|---|"]
    def ours(e):
        if "error" in e:
            return e["error"][:80]
        return ("verified" if e.get("verified") else "NOT verified") + ("" if e.get("runs") else
                                                                        "; unchecked plan does not run")
    for name in models:
        e = results.get(("edgeprune", name), {})
        t = results.get(("torch_pruning", name), {})
        def f(d, k):
            return f"{d[k]:.2f}" if k in d else "-"
        tres = "runs" if t.get("runs") else (t.get("error", "not run") if t else "not run")
        lines.append(f"| {name} | {f(e, 'engine_s')} | {f(e, 'with_checks_s')} | {f(e, 'with_checks32_s')} | {f(e, 'max_rss_mb')} | {ours(e)} | "
                     f"{f(t, 'engine_s')} | {f(t, 'max_rss_mb')} | {tres} |")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"table in {out}")


if __name__ == "__main__":
    print(json.dumps(_one(sys.argv[1], sys.argv[2])))
