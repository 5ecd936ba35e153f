"""What edgeprune writes: never over files it did not write, never the current folder or its
input, replacements in one step (old or new model at every instant, also under SIGKILL),
concurrent writers, leftovers cleaned up."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from edgeprune.cli.main import main
from edgeprune.errors import ConfigError
from edgeprune.outputs import MANIFEST, check_output, recover, writing
from edgeprune.store import load_model, save_model
from edgeprune.zoo import create_model


def _model(seed: int):
    torch.manual_seed(seed)
    return create_model("har_cnn").eval()


def _leftovers(folder):
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense") / "dense"
    save_model(_model(0), out, "har_cnn", {"num_classes": 6})
    return out


def test_foreign_folder_current_folder_and_input_are_refused(tmp_path, dense, monkeypatch, capsys):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    args = ["prune", str(dense), "--ratio", "0.5", "--recover", "none", "--finetune-epochs", "0"]
    assert main(args + ["--out", str(keep), "--force"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "did not write" in err and "Traceback" not in err
    assert (keep / "notes.txt").read_text() == "mine" and sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user.txt").write_text("x")
    assert main(args + ["--out", ".", "--force"]) == 2
    assert "current folder" in capsys.readouterr().err and (tmp_path / "user.txt").exists()
    assert main(args + ["--out", str(dense), "--force"]) == 2  # the input itself
    assert main(args + ["--out", str(dense.parent), "--force"]) == 2  # a folder holding the input
    assert "overlaps the input" in capsys.readouterr().err
    assert load_model(dense)[1]["arch"] == "har_cnn"


def test_own_folder_needs_force_and_is_replaced_whole(tmp_path, dense, capsys):
    out = tmp_path / "p"
    args = ["prune", str(dense), "--ratio", "0.5", "--recover", "none", "--out", str(out)]
    assert main(args) == 0
    first = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(first) == ["model.json", "plan.json", "weights.safetensors", "widths.svg"]
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(args[:3] + ["0.25"] + args[4:] + ["--force"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["groups"][0]["removed"] == plan["groups"][0]["units"] // 4
    assert not _leftovers(out)
    (out / "extra.txt").write_text("added by the user")  # now the folder is no longer edgeprune's alone
    assert main(args + ["--force"]) == 2 and (out / "extra.txt").exists()


def test_empty_folder_and_new_path_are_fine_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty") == (tmp_path / "empty").resolve()
    assert check_output(tmp_path / "new" / "deeper")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output(tmp_path / "f", force=True)


def test_a_failure_while_writing_leaves_the_old_output(tmp_path):
    out = tmp_path / "m"
    save_model(_model(0), out, "har_cnn", {})
    before = (out / "weights.safetensors").read_bytes()
    with pytest.raises(RuntimeError), writing(out, force=True) as tmp:
        (tmp / "model.json").write_text("{}")
        raise RuntimeError("disk on fire")
    assert (out / "weights.safetensors").read_bytes() == before and not _leftovers(out)


WRITER = textwrap.dedent("""
    import sys, torch
    import edgeprune.outputs as outputs
    from edgeprune.store import save_model
    from edgeprune.zoo import create_model
    if sys.argv[2] == "fallback":  # no RENAME_EXCHANGE: two renames, repaired by recover()
        outputs._exchange = lambda a, b: False
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(create_model("har_cnn"))
    print("ready", flush=True)
    i = 0
    while True:
        save_model(models[i % 2], sys.argv[1], "har_cnn", {}, overwrite=True)
        i += 1
""")


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_sigkill_during_replacement_leaves_a_complete_model(tmp_path, mode):
    out = tmp_path / "m"
    save_model(_model(1), out, "har_cnn", {})
    expected = [_model(s).state_dict()["classifier.weight"] for s in (1, 2)]
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(0)
    seen = set()
    for trial in range(12):
        p = subprocess.Popen([sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert p.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        model, _ = load_model(out)  # recovers the fallback's half-done swap first
        w = model.state_dict()["classifier.weight"]
        match = [i for i, e in enumerate(expected) if torch.equal(w, e)]
        assert match, f"trial {trial}: the model on disk is neither the old nor the new one"
        seen.add(match[0])
        assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "model.json", "weights.safetensors"]
    assert seen == {0, 1}, "every kill landed before the first replacement: the test did not test"
    save_model(_model(2), out, "har_cnn", {}, overwrite=True)  # the next write cleans up after the kills
    assert not _leftovers(out)


def test_two_concurrent_writers_both_finish_and_the_last_one_wins(tmp_path):
    out = tmp_path / "m"
    code = textwrap.dedent(f"""
        import sys, torch
        from edgeprune.store import save_model
        from edgeprune.zoo import create_model
        torch.manual_seed(int(sys.argv[1]))
        m = create_model("har_cnn")
        for _ in range(15):
            save_model(m, {str(out)!r}, "har_cnn", {{}}, overwrite=True)
        print("done")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for s in (1, 2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0 and o.strip() == b"done", e.decode()[-2000:]
    model, _ = load_model(out)
    w = model.state_dict()["classifier.weight"]
    assert any(torch.equal(w, _model(s).state_dict()["classifier.weight"]) for s in (1, 2))
    assert not _leftovers(out)


def test_concurrent_first_writers_without_force_one_wins_one_is_told(tmp_path):
    out = tmp_path / "new"
    first = writing(out)  # checked while the folder did not exist
    (first.__enter__() / "model.json").write_text('{"writer": 1}')
    with writing(out) as other:  # another process finishes first
        (other / "model.json").write_text('{"writer": 2}')
    with pytest.raises(ConfigError, match="another edgeprune process"):
        first.__exit__(None, None, None)
    assert json.loads((out / "model.json").read_text()) == {"writer": 2} and not _leftovers(out)


def test_recover_removes_a_dead_writers_leftovers_only(tmp_path):
    out = tmp_path / "m"
    save_model(_model(0), out, "har_cnn", {})
    dead = tmp_path / ".m.edgeprune-tmp-999999-abcd1234"  # a pid no process has
    dead.mkdir()
    (dead / ".edgeprune-writing").write_text("999999")
    mine = tmp_path / ".m.notes"
    mine.mkdir()
    recover(out)
    assert not dead.exists() and mine.exists()
