"""`edgeprune methods`: the catalogue as registered (name, command, what it does, its options),
as a table or as the Markdown of docs/methods.md's generated section (`--markdown`)."""
from __future__ import annotations

import json


def add(sub) -> None:
    s = sub.add_parser("methods", help="list the registered methods, criteria and recoveries")
    s.add_argument("--verb", choices=["prune", "sparsify", "search", "train"], help="only the methods of one verb")
    s.add_argument("--markdown", action="store_true", help="the Markdown table of docs/methods.md")
    s.set_defaults(fn=run)


COMMAND = {"prune": "prune", "search": "prune", "sparsify": "sparsify", "train": "train"}


def rows(verb: str | None = None) -> list[dict]:
    from edgeprune.registry import CRITERIA, METHODS, RECOVERIES
    out = [{"name": e.name, "verb": e.verb, "command": f"edgeprune {COMMAND[e.verb]} --method {e.name}",
            "python": f"{e.obj.__module__}.{e.obj.__qualname__}", "summary": e.summary,
            "options": [f.name for f in e.obj.options()]} for e in METHODS.entries(verb)]
    if verb is None:
        out += [{"name": e.name, "verb": "criterion", "command": f"edgeprune prune --criterion {e.name}",
                 "python": f'PruneConfig(criterion="{e.name}")', "summary": e.summary, "options": []}
                for e in CRITERIA.entries()]
        out += [{"name": e.name, "verb": "recovery", "command": f"--recover {e.name}",
                 "python": f'RecoveryConfig(method="{e.name}")', "summary": e.summary, "options": []}
                for e in RECOVERIES.entries()]
    return out


def markdown(verb: str | None = None) -> str:
    lines = ["| name | kind | command line | Python | what it does | options |", "|---|---|---|---|---|---|"]
    for r in rows(verb):
        opts = ", ".join(f"`{o}`" for o in r["options"]) or "-"
        lines.append(f"| {r['name']} | {r['verb']} | `{r['command']}` | `{r['python']}` | {r['summary']} | {opts} |")
    return "\n".join(lines)


def run(a) -> int:
    if a.json:
        print(json.dumps(rows(a.verb)))
    elif a.markdown:
        print(markdown(a.verb))
    else:
        for r in rows(a.verb):
            print(f"{r['name']:20} {r['verb']:9} {r['summary']}")
    return 0
