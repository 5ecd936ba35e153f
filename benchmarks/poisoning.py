"""Poisoned federated training on HAPT: final accuracy under attack, by aggregation rule.

HAPT's 21 training users are the devices (non-IID); `--attackers` of them (drawn with the
seed) run one attack of edgeprune.federated.client.ATTACKS every round: huge finite weights,
sign-flipped updates, an inflated sample count, or training on flipped labels. Every
aggregation rule of edgeprune.federated.robust is run on every scenario, plus the plain
sample-weighted mean that trusts the devices' counts (FedAvg as usually written); the
all-honest run of each rule is the reference. Output: poisoning.json (every round of every
run) and poisoning.md (final accuracy, the drop from the honest run of plain FedAvg, traffic).
Runs already in --out are kept, so an interrupted sweep resumes.

    python -m benchmarks.poisoning --rounds 10 --out docs/federated_poisoning
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgeprune.federated.client import ATTACKS
from edgeprune.federated.experiment import FedConfig, run_federated
from edgeprune.federated.robust import RULES

# (label, aggregation rule, count cap): the first row is FedAvg trusting every count
DEFENCES = [("mean, counts trusted", "mean", 0.0)] + [(r, r, 4.0) for r in RULES]
SCENARIOS = [("honest", None, 0)] + [(f"{a} x{k}", a, k) for a in ATTACKS for k in (1, 3)]


def _key(defence: str, scenario: str) -> str:
    return f"{defence} | {scenario}"


def run(a) -> dict:
    from edgeprune.outputs import writing
    from edgeprune.safe_json import read_json

    out = Path(a.out)
    results = read_json(out / "poisoning.json", "poisoning results") if (out / "poisoning.json").exists() else {}
    defences = [d for d in DEFENCES if not a.defences or d[0] in a.defences or d[1] in a.defences]
    scenarios = [s for s in SCENARIOS if not a.scenarios or s[0] in a.scenarios]
    for label, rule, cap in defences:
        for name, attack, k in scenarios:
            key = _key(label, name)
            if key in results:
                continue
            t0 = time.time()
            cfg = FedConfig(method=a.method, rounds=a.rounds, seed=a.seed, aggregation=rule, count_cap=cap,
                            attack=attack, attackers=k)
            h = run_federated(cfg).to_dict()
            results[key] = {"defence": label, "rule": rule, "count_cap": cap, "scenario": name, "attack": attack,
                            "attackers": k, "seconds": time.time() - t0, **h}
            last = h["rounds"][-1]
            print(f"{key:40} accuracy {100 * last['accuracy']:6.2f} %  ({time.time() - t0:.0f} s)", flush=True)
            with writing(out, force=True, kind="poisoning") as tmp:  # after every run: resumable
                (tmp / "poisoning.json").write_text(json.dumps(results, indent=1))
                (tmp / "poisoning.md").write_text(table(results, a))
    return results


def table(results: dict, a) -> str:
    """Rows: defences; columns: scenarios; cells: final accuracy and, in brackets, its difference
    from the honest run of plain FedAvg. Then the worst run with 3 attackers against both
    references (plain FedAvg's honest run and the defence's own), traffic and corrections."""
    names = [s[0] for s in SCENARIOS if any(r["scenario"] == s[0] for r in results.values())]
    labels = [d[0] for d in DEFENCES if any(r["defence"] == d[0] for r in results.values())]
    ref = results.get(_key(DEFENCES[0][0], "honest"))
    honest = ref["rounds"][-1]["accuracy"] if ref else None
    lines = [f"Final test accuracy (%, users 22-30) after {a.rounds} rounds, 21 devices, method {a.method}, seed "
             f"{a.seed}; in brackets, the difference in points from plain FedAvg's honest run"
             f"{f' ({100 * honest:.2f} %)' if honest is not None else ''}. Worst x3: the lowest accuracy with "
             "3 attackers, in points below plain FedAvg's honest run / below the defence's own honest run.", "",
             "| defence | " + " | ".join(names) + " | worst x3 | traffic (honest) | counts capped / updates rejected (all runs) |",
             "|---|" + "---|" * (len(names) + 3)]
    for label in labels:
        cells, capped, refused, traffic, x3 = [], 0, 0, "-", []
        for n in names:
            r = results.get(_key(label, n))
            if r is None:
                cells.append("-")
                continue
            acc = r["rounds"][-1]["accuracy"]
            drop = f" ({100 * (acc - honest):+.1f})" if honest is not None else ""
            cells.append(f"{100 * acc:.2f}{drop}")
            capped += len(r.get("corrected", []))
            refused += len(r["rejected"])
            if r["attackers"] == 3:
                x3.append(acc)
            if n == "honest":
                traffic = f"{r['total_bytes'] / 2 ** 20:.1f} MiB"
        own = results.get(_key(label, "honest"))
        worst = "-"
        if x3 and honest is not None and own is not None:
            worst = f"{100 * (honest - min(x3)):.1f} / {100 * (own['rounds'][-1]['accuracy'] - min(x3)):.1f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {worst} | {traffic} | {capped} / {refused} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--method", default="fedavg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defences", nargs="*", help="labels or rule names (default: all)")
    p.add_argument("--scenarios", nargs="*", help="e.g. honest 'huge x3' (default: all)")
    p.add_argument("--out", default="docs/federated_poisoning")
    p.add_argument("--table-only", action="store_true", help="rewrite poisoning.md from poisoning.json, run nothing")
    a = p.parse_args(argv)
    if a.table_only:
        from edgeprune.outputs import owned_files, write_file
        from edgeprune.safe_json import read_json
        out = Path(a.out)
        results = read_json(out / "poisoning.json", "poisoning results")
        write_file(out / "poisoning.md", table(results, a), force=True, owned="poisoning.md" in (owned_files(out) or ()))
        return
    run(a)


if __name__ == "__main__":
    main()
