"""The CLI, as a user runs it (in-process for speed)."""
import json

import pytest

from edgeprune.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "dense"
    assert main(["train", "--model", "har_cnn", "--epochs", "1", "--out", str(out)]) == 0
    return out


def test_train_prune_eval_profile_export(trained, tmp_path, capsys):
    pruned = tmp_path / "pruned"
    assert main(["--json", "prune", str(trained), "--keep-macs", "0.3", "--finetune-epochs", "1",
                 "--out", str(pruned)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["after"]["macs"] <= 0.3 * res["before"]["macs"] and res["verification_error"] < 1e-9
    assert res["accuracy"]["recovered"] > 0.5
    svg = (pruned / "widths.svg").read_text()
    assert svg.startswith("<svg") and "features.0" in svg
    assert main(["--json", "eval", str(pruned)]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] > 0.5
    assert main(["--json", "profile", str(pruned), "--repeats", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0
    assert main(["export", str(pruned), "--out", str(tmp_path / "p.onnx")]) == 0
    assert (tmp_path / "p.onnx").exists()


@pytest.mark.parametrize("criterion", ["fpgm", "apoz", "taylor"])
def test_prune_by_criterion_name(trained, tmp_path, capsys, criterion):
    out = tmp_path / criterion
    assert main(["--json", "prune", str(trained), "--criterion", criterion, "--ratio", "0.5", "--recover", "none",
                 "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["after"]["params"] < 0.4 * res["before"]["params"] and res["verification_error"] < 1e-9


def test_retraining_free_recovery(trained, tmp_path, capsys):
    out = tmp_path / "ls"
    assert main(["--json", "prune", str(trained), "--keep-macs", "0.25", "--recover", "reconstruct",
                 "--calibration", "500", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["accuracy"]["recovered"] > res["accuracy"]["pruned"] + 0.2


@pytest.mark.parametrize("method", ["magnitude", "lamp", "nm", "wanda", "iterative", "sparsegpt", "dns", "dpf"])
def test_sparsify_by_name(trained, tmp_path, capsys, method):
    out = tmp_path / method
    epochs = ["--finetune-epochs", "1"] if method in ("dns", "dpf") else []
    assert main(["--json", "sparsify", str(trained), "--method", method, "--sparsity", "0.8", "--out", str(out)]
                + epochs) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    least = {"nm": 0.49, "sparsegpt": 0.001, "dns": 0.6}.get(method, 0.79)  # sparsegpt: the Linear layer only
    assert res["sparsity"] > least
    st = res["storage_int8_bytes"]
    assert st["best_per_layer"] < st["dense"]


@pytest.mark.parametrize("extra", [["--regularizer", "slimming"], ["--regularizer", "polarization"],
                                   ["--regularizer", "group_lasso"], ["--soft-filter", "0.5"]])
def test_training_time_methods_by_name(tmp_path, capsys, extra):
    out = tmp_path / "m"
    assert main(["--json", "train", "--model", "har_cnn", "--epochs", "1", "--out", str(out)] + extra) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= res["test_accuracy"] <= 1.0
    if extra[0] == "--regularizer":
        assert res["test_accuracy"] > 0.3
    else:  # soft filter pruning: the model is saved pruned, with its plan
        assert (out / "plan.json").exists()
        assert main(["--json", "profile", str(out), "--repeats", "2"]) == 0


@pytest.mark.parametrize("method", ["amc", "abc", "dsa", "red"])
def test_prune_by_method_name(trained, tmp_path, capsys, method):
    out = tmp_path / method
    assert main(["--json", "prune", str(trained), "--method", method, "--keep-macs", "0.4", "--episodes", "4",
                 "--cycles", "1", "--finetune-epochs", "0", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if method != "red":  # red merges duplicates only: a trained net has none, nothing changes
        assert res["after"]["macs"] <= 0.4 * res["before"]["macs"] and res["verification_error"] < 1e-9
    assert main(["--json", "eval", str(out)]) == 0


def test_layer_pruning_and_train_to_rate_and_fbs_by_name(tmp_path, capsys):
    r = tmp_path / "r"
    assert main(["train", "--model", "resnet1d", "--epochs", "1", "--out", str(r)]) == 0
    assert main(["--json", "prune", str(r), "--method", "layers", "--blocks", "1", "--finetune-epochs", "0",
                 "--out", str(tmp_path / "rl")]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["details"]["removed_blocks"]) == 1
    assert main(["eval", str(tmp_path / "rl")]) == 0  # reloads with the block removed
    assert main(["--json", "train", "--epochs", "2", "--target-macs", "0.3", "--out", str(tmp_path / "q")]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(res["achieved"] - 0.3) < 0.01 and (tmp_path / "q" / "plan.json").exists()
    assert main(["--json", "train", "--epochs", "1", "--fbs", "0.5", "--out", str(tmp_path / "f")]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["fbs_macs_per_input"]["mean"] < 0.55 * res["fbs_macs_per_input"]["dense"]
    assert main(["eval", str(tmp_path / "f")]) == 0  # reloads with its gates


def test_bad_inputs_exit_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not an edgeprune model directory" in capsys.readouterr().err
    assert main(["train", "--model", "nope", "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--data", "mnist", "--root", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "y")]) == 2
