"""Rewrite docs/methods.md's generated table (between <!-- registry --> markers) from the
registry: run after adding a method (tests/test_registry.py fails until the table is current).

    .venv/bin/python scripts/registry_table.py
"""
from pathlib import Path

from edgeprune.cli.methods import markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "methods.md"
text = DOCS.read_text()
start, end = "<!-- registry -->", "<!-- /registry -->"
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
DOCS.write_text(head + start + "\n" + markdown() + "\n" + end + tail)
print(f"updated {DOCS}")
