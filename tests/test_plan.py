"""Plans: JSON round trip, replay on a fresh model, safe save/load, mismatch errors."""
import json

import pytest
import torch

import edgeprune as ep
from edgeprune.store import load_model, save_model
from edgeprune.zoo import create_model


def _pruned():
    model = create_model("har_cnn").eval()
    x = torch.randn(1, 6, 128)
    return model, x, ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)


def test_plan_json_round_trip_and_replay(tmp_path):
    model, x, r = _pruned()
    r.plan.save(tmp_path / "plan.json")
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["version"] == 1 and "features.0.weight" in data["removed"]
    fresh = create_model("har_cnn")
    ep.apply_plan(fresh, ep.PrunePlan.load(tmp_path / "plan.json"))
    fresh.load_state_dict(r.model.state_dict())
    assert torch.equal(fresh.eval()(x), r.model(x))


def test_save_and_load_pruned_safely(tmp_path):
    model, x, r = _pruned()
    ep.save_pruned(r.model, r.plan, tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").exists()
    loaded = ep.load_pruned(create_model("har_cnn"), tmp_path / "m").eval()
    assert torch.equal(loaded(x), r.model(x))


def test_model_store_round_trip(tmp_path):
    model, x, r = _pruned()
    save_model(r.model, tmp_path / "p", "har_cnn", {}, plan=r.plan)
    loaded, info = load_model(tmp_path / "p")
    assert info["arch"] == "har_cnn" and torch.equal(loaded(x), r.model(x))


def test_plan_on_wrong_architecture_is_refused():
    _, _, r = _pruned()
    with pytest.raises(ep.PlanMismatchError, match="does not have|expects"):
        ep.apply_plan(create_model("resnet1d"), r.plan)
    pruned_once = create_model("har_cnn")
    ep.apply_plan(pruned_once, r.plan)
    with pytest.raises(ep.PlanMismatchError):
        ep.apply_plan(pruned_once, r.plan)  # already pruned


def test_iterative_steps_merge_into_one_plan():
    model = create_model("har_cnn").eval()
    x = torch.randn(1, 6, 128)
    r = ep.prune(model, ep.PruneConfig(prune_ratio=0.5, steps=3), example_inputs=x)
    assert r.verification.ok
    fresh = create_model("har_cnn")
    ep.apply_plan(fresh, r.plan)
    fresh.load_state_dict(r.model.state_dict())
    assert r.model.features[0].out_channels == 32


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    _, _, r = _pruned()
    import edgeprune.surgery.plan as plan_mod

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(plan_mod.os, "replace", boom)
    with pytest.raises(OSError):
        r.plan.save(tmp_path / "plan.json")
    assert list(tmp_path.iterdir()) == []
