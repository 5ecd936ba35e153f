"""Every registered method, criterion and recovery, through the front door: registering one
enrols it here (each runs through its verb on a small task and must do what its kind
promises), in the command line (its name and options are flags) and in docs/methods.md's
generated table. Each method's own defining tests live beside the others (test_methods,
test_sparse, test_search, test_criteria)."""
import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import edgeprune as ep
from edgeprune.cli.main import main
from edgeprune.cli.methods import markdown
from edgeprune.registry import CRITERIA, METHODS, RECOVERIES
from edgeprune.testing.tasks import tiny_net, tiny_task
from edgeprune.training import TrainConfig, evaluate, train

DOCS = Path(__file__).resolve().parents[1] / "docs" / "methods.md"
# quick settings per method, so that the sweep stays fast (every other option at its default)
QUICK = {"amc": {"episodes": 4, "warmup": 2, "calibration": 64, "val_samples": 64},
         "abc": {"cycles": 1, "fitness_batches": 2, "val_samples": 64}, "dsa": {"search_epochs": 1},
         "iterative": {"rounds": 2}, "taylor_reallocation": {"keep_macs": 0.5, "interval": 2}}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    task = tiny_task()
    model = tiny_net()
    train(model, task.train, task.val, TrainConfig(epochs=2, lr=5e-3, progress=False))
    return model.eval(), task


def _config(name: str):
    return ep.method_config(name, **QUICK.get(name, {}))


def test_every_config_round_trips_through_json():
    for e in METHODS.entries():
        c = _config(e.name)
        assert ep.config_from_dict(json.loads(json.dumps(c.to_dict()))) == c, e.name
        assert e.summary and e.obj.method == e.name and e.verb in ("prune", "sparsify", "search", "train")


@pytest.mark.parametrize("name", METHODS.names("prune"))
def test_structured_methods_give_a_smaller_or_equal_model_that_runs(name, trained):
    model, task = trained
    x = torch.randn(1, *task.input_shape)
    cfg = ep.PruneConfig(prune_ratio=0.5) if name == "criterion" else _config(name)
    r = ep.prune(model, cfg, example_inputs=x, data=[b for _, b in zip(range(4), task.train)])
    assert r.model(x).shape == model(x).shape and r.after.params <= r.before.params
    assert r.model is not model and isinstance(r.to_dict(), dict)
    if name == "criterion":
        assert r.verification.ok and r.after.params < 0.6 * r.before.params


@pytest.mark.parametrize("name", METHODS.names("sparsify"))
def test_sparsify_methods_mask_the_weights_they_say(name, trained):
    model, task = trained
    c = _config(name)
    r = ep.sparsify(model, c, task=task, finetune=TrainConfig(epochs=1, lr=1e-3, progress=False))
    want = 1 - c.n / c.m if name == "nm" else getattr(c, "sparsity", 0.5)
    got = r.masks.sparsity()
    assert got == pytest.approx(want, abs=0.12 if name == "dns" else 0.03), name
    zeros = sum(int((p == 0).sum()) for n, p in r.model.named_parameters() if n in r.masks.masks)
    assert zeros >= sum(int((~m).sum()) for m in r.masks.masks.values())  # the masks hold in the model
    assert not any((p == 0).all() for n, p in model.named_parameters() if n in r.masks.masks)  # input untouched


@pytest.mark.parametrize("name", METHODS.names("search"))
def test_searches_meet_their_budget(name, trained):
    model, task = trained
    cfg = ep.method_config(name, keep_macs=0.5, progress=False, **QUICK.get(name, {}))
    r = ep.search(model, cfg, task=task, finetune=TrainConfig(epochs=1, progress=False))
    assert r.after.macs <= 0.5 * r.before.macs * 1.001 and r.verification.ok
    assert set(r.accuracy) == {"before", "searched"}


@pytest.mark.parametrize("name", METHODS.names("train"))
def test_training_time_methods_train_then_finalize(name, trained):
    _, task = trained
    torch.manual_seed(1)
    model = tiny_net()
    cfg = _config(name)
    r = ep.prune_while_training(model, cfg, task=task, train_config=TrainConfig(epochs=2, lr=5e-3, progress=False))
    # it trained (chance: 0.25): the model trained in place, or the result where the method trains after pruning
    assert evaluate(r.model if cfg.trains_after_prune or cfg.replay_on_load else model, task.test) > 0.4
    assert r.details["method"] == name
    if METHODS.get(name).obj.replay_on_load:
        assert r.plan.is_empty
    else:  # every other training-time method ends with a physical, verified prune
        assert not r.plan.is_empty and (r.verification is None or r.verification.ok)


def test_every_criterion_and_recovery_runs(trained):
    model, task = trained
    x = torch.randn(1, *task.input_shape)
    torch.manual_seed(0)  # criteria on 2-D feature maps (HRank needs them), with labels for Taylor
    net2d = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 36, 3)).eval()
    data2d = [(torch.randn(8, 3, 6, 6), torch.randint(0, 3, (8,))) for _ in range(3)]
    for name in CRITERIA.names():
        r = ep.prune(net2d, ep.PruneConfig(criterion=name, prune_ratio=0.25), example_inputs=torch.randn(1, 3, 6, 6),
                     data=data2d)
        assert r.verification.ok and r.after.params < r.before.params, name
    base = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    for name in RECOVERIES.names():
        pruned = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x).model
        ep.recover(model, pruned, base.plan, task, ep.RecoveryConfig(method=name, epochs=1, calibration=64))
        assert pruned(x).shape == model(x).shape, name


def test_every_method_and_option_is_on_the_command_line(capsys):
    commands = {"prune": "prune", "search": "prune", "sparsify": "sparsify", "train": "train"}
    for verb, command in commands.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for e in METHODS.entries(verb):
            assert e.name in text, (command, e.name)
            for f in e.obj.options():
                assert f"--{f.name.replace('_', '-')}" in text or f.name in ("seed", "calibration"), (e.name, f.name)


def test_docs_table_is_the_registry():
    text = DOCS.read_text()
    block = text[text.index("<!-- registry -->") + len("<!-- registry -->"):text.index("<!-- /registry -->")]
    assert block.strip() == markdown().strip(), "regenerate it: edgeprune methods --markdown"


def test_a_config_refuses_an_out_of_range_option_in_one_line():
    with pytest.raises(ep.ConfigError, match="sparsity must be in \\[0, 1\\)"):
        ep.method_config("magnitude", sparsity=1.2)
    with pytest.raises(ep.ConfigError, match="unknown method 'nope'"):
        ep.method_config("nope")
    assert {f.name for f in fields(METHODS.get("wanda").obj)} >= {"sparsity", "n", "m", "ignore"}
