"""The fully-integer .tflite export: the flatbuffer LiteRT runs gives the predictions of
edgeprune's int8 reference (within a few int8 steps: TFLite rounds its rescaling differently),
for 1-D and 2-D convolutions, depthwise, residual adds, pooling and a flatten into a
fully-connected layer; foreign files are never replaced."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from edgeprune.errors import ConfigError  # noqa: E402
from edgeprune.export.tflite import check_tflite, export_tflite, run_tflite  # noqa: E402

CASES = [("har_cnn", (6, 128)), ("lenet5", (1, 28, 28)), ("resnet8", (3, 32, 32)), ("ds_cnn", (6, 128)),
         ("lenet_300_100", (1, 28, 28))]


@pytest.mark.parametrize("name,shape", CASES)
def test_litert_runs_the_int8_reference_model(name, shape, tmp_path, quantized):
    _, qm, xs = quantized(name, shape, 20)
    path = export_tflite(qm, tmp_path / "m.tflite")
    c = check_tflite(qm, path, xs)
    # a transposed kernel, a wrong flatten order or a lost zero point moves outputs by tens of steps
    assert c.samples == 20 and c.argmax_agreement == 1.0 and c.max_step_diff <= 3 and c.mean_step_diff < 1.0
    optimised = run_tflite(qm, path, np.stack([qm.quantize_input(x) for x in xs[:4]]), reference=False)
    want = np.stack([qm.run(qm.quantize_input(x)).reshape(-1) for x in xs[:4]])
    assert np.abs(optimised.astype(int) - want).max() <= 3


def test_only_files_edgeprune_wrote_are_replaced(tmp_path, quantized):
    _, qm, _ = quantized("lenet_300_100", (1, 28, 28), 1)
    path = export_tflite(qm, tmp_path / "m.tflite")
    export_tflite(qm, path)  # its own file: replaced
    foreign = tmp_path / "theirs.tflite"
    foreign.write_bytes(b"not ours")
    with pytest.raises(ConfigError, match="did not write it"):
        export_tflite(qm, foreign)
    assert foreign.read_bytes() == b"not ours"


def test_cli_export_tflite_reports_litert_accuracy(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeprune.cli.main", *a], capture_output=True, text=True,
                                    cwd=tmp_path)  # noqa: E731
    assert run("train", "--epochs", "1", "--out", "dense").returncode == 0
    r = run("--json", "export", "dense", "--format", "tflite", "--out", "m.tflite", "--check-samples", "200",
            "--calibration", "64")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["samples"] == 200 and out["argmax_agreement"] > 0.98 and out["accuracy"] > 0.5
    assert (tmp_path / "m.tflite").read_bytes()[4:8] == b"TFL3"
