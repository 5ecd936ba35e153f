"""Layer types are known in edgeprune/rules/ only: everywhere else code asks the rules
(`layer_kind`, `weight_axes`), so a new layer type is taught in one place. Building layers
(`nn.Linear(...)`, and the zoo and testing/ choosing which class to build) is fine; testing a
module's type is not."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgeprune"
LAYER_CLASS = re.compile(r"^(_?Conv(Transpose)?(\dd|Nd)|Linear|_?BatchNorm(\dd)?|SyncBatchNorm|_?InstanceNorm(\dd)?|"
                         r"LayerNorm|RMSNorm|GroupNorm|Embedding|MultiheadAttention|LSTM|GRU|RNN|PReLU|_ConvTransposeNd)$")
LAYER_MODULES = {"conv", "batchnorm", "instancenorm", "normalization", "linear", "rnn", "sparse", "activation"}


BUILDERS = {"rules", "zoo", "testing"}  # rules know layers; the zoo and toy models build them


def _violations(path: Path, root: Path = ROOT.parent) -> list[str]:
    tree = ast.parse(path.read_text())
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in calls:
            if LAYER_CLASS.match(node.attr) or (node.attr in LAYER_MODULES and isinstance(node.value, ast.Attribute)
                                                 and node.value.attr == "modules"):
                out.append(f"{path.relative_to(root)}:{node.lineno} reads nn...{node.attr}")
    return out


def test_no_layer_type_tests_outside_rules():
    bad = []
    for path in ROOT.rglob("*.py"):
        if BUILDERS & set(path.relative_to(ROOT).parts[:1]):
            continue
        bad += _violations(path)
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_type_test_and_allows_building(tmp_path):
    p = tmp_path / "probe.py"
    p.write_text("from torch import nn\n"
                 "def f(m):\n"
                 "    return isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm))\n"
                 "layer = nn.Linear(3, 4)\n")
    got = _violations(p, tmp_path)
    assert got == ["probe.py:3 reads nn...Conv2d", "probe.py:3 reads nn..._BatchNorm", "probe.py:3 reads nn...batchnorm"] \
        or sorted(got) == sorted(["probe.py:3 reads nn...Conv2d", "probe.py:3 reads nn..._BatchNorm",
                                  "probe.py:3 reads nn...batchnorm"])
