"""Damaged and hostile inputs: model folders, plans, weights, device profiles and CLI values
give one clear line and exit 2 (never a traceback or a huge allocation); fuzzed loaders only
ever raise edgeprune's own errors; tied weights stay tied; NaN weights are caught."""
import json
import math
import pickle
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torch import nn

import edgeprune as ep
from edgeprune.cli.main import main
from edgeprune.devices.profiles import load_profile
from edgeprune.errors import ConfigError, EdgePruneError
from edgeprune.store import load_model, read_model_json, save_model
from edgeprune.surgery.plan import PrunePlan
from edgeprune.zoo import create_model


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    model = create_model("har_cnn").eval()
    r = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=torch.randn(1, 6, 128))
    out = tmp_path_factory.mktemp("p") / "p"
    save_model(r.model, out, "har_cnn", {"num_classes": 6}, plan=r.plan)
    return out


def _json_edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _tensors_edit(path, fn):
    state = load_file(path)
    fn(state)
    save_file(state, path)


def _first_removed(d):
    return d["removed"][next(iter(d["removed"]))]


DAMAGE = {
    "malformed model.json": ("model.json", lambda p: p.write_text('{"arch": "har_cnn", "kwargs": {'), "not valid JSON"),
    "deeply nested model.json": ("model.json", lambda p: p.write_text('{"a":' * 50_000 + "1" + "}" * 50_000),
                                 "nested"),
    "unknown argument": ("model.json", lambda p: _json_edit(p, lambda d: d["kwargs"].update(bogus=1)),
                         "takes no argument 'bogus'"),
    "4e9 classes": ("model.json", lambda p: _json_edit(p, lambda d: d["kwargs"].update(num_classes=4_000_000_000)),
                    "num_classes"),
    "terabyte widths": ("model.json", lambda p: _json_edit(p, lambda d: d["kwargs"].update(widths=[90_000] * 4)),
                        "parameters, more than"),
    "unknown architecture": ("model.json", lambda p: _json_edit(p, lambda d: d.update(arch="gpt5")), "unknown model"),
    "negative plan index": ("plan.json", lambda p: _json_edit(p, lambda d: _first_removed(d).update({"0": [-1, 2]})),
                            "outside"),
    "plan index out of range": ("plan.json", lambda p: _json_edit(p, lambda d: _first_removed(d).update({"0": [10 ** 6]})),
                                "outside"),
    "plan of the wrong version": ("plan.json", lambda p: _json_edit(p, lambda d: d.update(version=99)), "version"),
    "deeply nested plan": ("plan.json", lambda p: p.write_text("[" * 100_000), "nested"),
    "truncated weights": ("weights.safetensors", lambda p: p.write_bytes(p.read_bytes()[:5000]), "not a readable"),
    "pickle weights": ("weights.safetensors", lambda p: p.write_bytes(pickle.dumps({"a": 1})), "pickle"),
    "torch.save weights": ("weights.safetensors", lambda p: torch.save({"a": torch.zeros(1)}, p), "pickle or zip"),
    "missing tensor": ("weights.safetensors",
                       lambda p: _tensors_edit(p, lambda s: s.pop("classifier.weight")), "missing classifier.weight"),
    "wrong-shaped tensor": ("weights.safetensors",
                            lambda p: _tensors_edit(p, lambda s: s.update({"classifier.weight": torch.zeros(3, 3)})),
                            "wrong shape"),
    "no weights": ("weights.safetensors", lambda p: p.unlink(), "missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_model_folder_gives_one_clear_line_and_exit_2(case, pruned, tmp_path, capsys):
    name, damage, words = DAMAGE[case]
    bad = tmp_path / "bad"
    shutil.copytree(pruned, bad)
    damage(bad / name)
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("edgeprune: error:") and words in err, err
    assert name in err or "model" in err  # it names the file (or the model it describes)
    with pytest.raises(EdgePruneError):
        load_model(bad)


def test_nan_weights_warn_on_eval_and_are_refused_where_they_mislead(pruned, tmp_path, capsys):
    bad = tmp_path / "nan"
    shutil.copytree(pruned, bad)
    _tensors_edit(bad / "weights.safetensors", lambda s: s["classifier.weight"].view(-1)[:1].fill_(math.nan))
    assert main(["eval", str(bad)]) == 0
    assert "warning" in capsys.readouterr().err
    for cmd in (["export", str(bad), "--out", str(tmp_path / "m.onnx")],
                ["sparsify", str(bad), "--out", str(tmp_path / "s")]):
        assert main(cmd) == 2
        assert "NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("field,value,words", [
    ("flash_bytes", "nan", "flash_bytes"), ("runtime_flash_bytes", "-4096", "runtime_flash_bytes"),
    ("ram_bytes", "true", "ram_bytes"), ("clock_hz", "inf", "clock_hz"), ("macs_per_cycle", "{ int8 = -1 }", "macs"),
    ("kind", '"toaster"', "kind"), ("pj_per_cycle", '"a lot"', "pj_per_cycle"),
    ("c_opt", '"-O2 -fplugin=x.so"', "c_opt"), ("channel_multiple", "0", "channel_multiple")])  # passed to the compiler: only the known levels
def test_device_profile_fields_are_checked_by_name(field, value, words, tmp_path):
    good = {"flash_bytes": "262144", "ram_bytes": "65536", "clock_hz": "80000000",
            "macs_per_cycle": "{ int8 = 0.5 }", "pj_per_cycle": "250.0"}
    body = {**good, field: value}
    path = tmp_path / "board.toml"
    path.write_text("[board]\n" + "\n".join(f"{k} = {v}" for k, v in body.items()) + "\n")
    with pytest.raises(ConfigError, match=words):
        load_profile(path)
    path.write_text("[board]\n" + "\n".join(f"{k} = {v}" for k, v in good.items()) + "\n")
    assert load_profile(path).flash_bytes == 262144


@pytest.mark.parametrize("argv,words", [
    (["sparsify", "M", "--method", "nm", "--n", "5", "--m", "4", "--out", "x"], "1 <= N < M"),
    (["prune", "M", "--ratio", "1.5", "--out", "x"], "--ratio"),
    (["prune", "M", "--keep-macs", "nan", "--out", "x"], "--keep-macs"),
    (["train", "--epochs", "-3", "--out", "x"], "--epochs"),
    (["fit", "--device", "stm32l432", "--latency-ms", "0"], "--latency-ms"),
])
def test_bad_cli_values_are_caught_up_front(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert main(["--json"] + argv) == 2
    line = json.loads(capsys.readouterr().out)
    assert line["exit_code"] == 2 and words in line["message"]


class TiedLM(nn.Module):
    """GPT-style weight tying: the output layer is the embedding matrix."""

    def __init__(self, vocab=40, dim=24):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.fc1, self.fc2, self.norm = nn.Linear(dim, 48), nn.Linear(48, dim), nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids)
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.head(self.norm(h))


def test_tied_weights_are_pruned_once_and_stay_tied_after_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = TiedLM().eval()
    ids = torch.randint(0, 40, (2, 9))
    r = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=ids)
    assert r.verification.ok
    m = r.model
    assert m.head.weight is m.emb.weight and m.emb.weight.shape[1] == 12 and m.fc2.out_features == 12
    assert r.plan.removed["emb.weight"] == r.plan.removed["head.weight"]
    ep.save_pruned(m, r.plan, tmp_path / "tied")
    again = ep.load_pruned(TiedLM(), tmp_path / "tied").eval()
    assert again.head.weight is again.emb.weight
    assert torch.allclose(again(ids), m(ids))


def test_tied_plan_applies_whatever_the_allocator_reuses():
    # the old tensors stay alive here, so a cut tensor can never take over one's address: an
    # apply_plan that found tied owners by the identity of the tensor they hold now (not by name)
    # would meet the alias already cut and fail (it passed only when the address was reused)
    torch.manual_seed(1)
    r = ep.prune(TiedLM().eval(), ep.PruneConfig(prune_ratio=0.5), example_inputs=torch.randint(0, 40, (2, 9)))
    fresh = TiedLM()
    held = list(fresh.parameters())
    ep.apply_plan(fresh, r.plan)
    assert fresh.head.weight is fresh.emb.weight and fresh.emb.weight.shape == (40, 12)
    assert all(p.shape[-1] in (24, 48, 40) or p.dim() == 1 for p in held)  # the originals are untouched


def test_parametrized_weights_are_refused_with_what_to_do():
    model = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 16, 3)), nn.ReLU(), nn.Conv1d(16, 8, 3))
    with pytest.raises(ConfigError, match="remove_parametrizations"):
        ep.prune(model.eval(), ep.PruneConfig(prune_ratio=0.5), example_inputs=torch.randn(1, 4, 20))


# ---------------------------------------------------------------- fuzzing the loaders

json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=4), max_leaves=30)
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


def _plan_like():
    return st.fixed_dictionaries({"version": st.sampled_from([1, 1, 2, "1"]), "removed": json_values,
                                  "shapes": json_values, "groups": json_values, "meta": json_values})


@FUZZ
@given(data=st.one_of(json_values, _plan_like()))
def test_fuzzed_plans_raise_only_edgeprune_errors(data):
    try:  # a plan that passes the checks still meets a model it may not fit: refused the same way
        ep.apply_plan(create_model("har_cnn"), PrunePlan.from_dict(data))
    except EdgePruneError:
        pass


HAR_SHAPES = {k: list(v.shape) for k, v in create_model("har_cnn").state_dict().items()}


@FUZZ
@given(picks=st.lists(st.tuples(st.sampled_from(sorted(HAR_SHAPES)), st.integers(0, 3), st.lists(st.integers(0, 300),
                                                                                             max_size=6)),
                      min_size=1, max_size=4))
def test_fuzzed_plans_on_real_layer_names_load_or_are_refused(picks, tmp_path):
    """Plans that name real tensors but cut them inconsistently: the folder either loads as a
    model that runs or is refused with edgeprune's error; never a crash in eval."""
    removed = {name: {str(d): sorted(set(idx))} for name, d, idx in picks}
    plan = {"version": 1, "removed": removed, "shapes": {n: HAR_SHAPES[n] for n in removed}}
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"arch": "har_cnn", "kwargs": {}}))
    (folder / "plan.json").write_text(json.dumps(plan))
    try:  # weights that match whatever the plan makes, as a hostile sender would provide
        shaped = ep.apply_plan(create_model("har_cnn"), PrunePlan.from_dict(plan))
        save_file({k: v.contiguous() for k, v in shaped.state_dict().items()}, folder / "weights.safetensors")
    except EdgePruneError:
        return
    try:
        model, _ = load_model(folder)
    except EdgePruneError:
        return
    model(torch.zeros(1, 6, 128))


@FUZZ
@given(kwargs=st.dictionaries(st.sampled_from(["num_classes", "widths", "kernel", "in_channels", "x"]), json_values,
                              max_size=3), arch=st.sampled_from(["har_cnn", "mlp", "autoencoder", "nope"]))
def test_fuzzed_model_json_raises_only_edgeprune_errors(kwargs, arch, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"arch": arch, "kwargs": kwargs}))
    try:
        info = read_model_json(path)
    except EdgePruneError:
        return
    assert info["arch"] == arch  # what passed the checks builds a bounded model


@FUZZ
@given(blob=st.binary(max_size=300), header=st.integers(0, 2 ** 64 - 1))
def test_fuzzed_safetensors_raise_only_edgeprune_errors(blob, header, tmp_path):
    from edgeprune.store import load_weights
    path = tmp_path / "w.safetensors"
    path.write_bytes(header.to_bytes(8, "little") + blob)
    with pytest.raises(EdgePruneError):
        load_weights(create_model("har_cnn"), path)


@FUZZ
@given(text=st.text(max_size=400))
def test_fuzzed_device_toml_raises_only_edgeprune_errors(text, tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(text)
    try:
        load_profile(path)
    except EdgePruneError:
        pass
