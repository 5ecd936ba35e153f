"""Device profiles, the cost of a model on a device, and `fit` end to end (with its HTML report
rendered in a headless browser)."""
import json
import shutil
import subprocess

import pytest
import torch
from torch import nn

from edgeprune.devices import Budget, builtin_profiles, check_budget, load_profile, model_cost
from edgeprune.errors import ConfigError


def test_builtin_profiles_cite_sources_and_user_toml_is_checked(tmp_path):
    profiles = builtin_profiles()
    assert {"rp2040", "stm32l432", "nrf52840", "stm32f746", "esp32", "rpi4"} <= set(profiles)
    for p in profiles.values():
        assert p.sources and p.estimates and p.flash_bytes > 0 and p.macs_per_cycle["int8"] > 0
    good = tmp_path / "board.toml"
    good.write_text('[myboard]\nflash_bytes = 131072\nram_bytes = 32768\nclock_hz = 48e6\n'
                    'macs_per_cycle = { int8 = 0.25 }\npj_per_cycle = 100.0\n')
    assert load_profile(good).name == "myboard" and load_profile(good).ram_bytes == 32768
    bad = tmp_path / "bad.toml"
    bad.write_text('[b]\nflash_bytes = 1\nram_bytes = 1\nclock_hz = 1\nmacs_per_cycle = { int8 = 1 }\n'
                   'pj_per_cycle = 1\nflsh = 3\n')
    with pytest.raises(ConfigError, match="unknown fields"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="unknown device"):
        load_profile("no_such_board")


@pytest.mark.parametrize("layers, shape", [
    ((nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8)), (3, 9, 7)),
    ((nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, (3, 5), padding=(2, 1), groups=4)), (3, 16, 16)),
    ((nn.Conv1d(3, 6, 5, padding=2), nn.ReLU(), nn.Conv1d(6, 6, 3, padding=1, groups=6)), (3, 20)),
])
def test_estimated_scratch_is_what_the_generated_c_allocates(layers, shape, tmp_path):
    from edgeprune.deploy import quantize_model
    from edgeprune.deploy.cgen import generate_c
    torch.manual_seed(0)
    model = nn.Sequential(*layers).eval()
    x = torch.randn(1, *shape)
    gen = generate_c(quantize_model(model, x, [torch.randn(4, *shape)], samples=4), tmp_path, sparse=False)
    for device in ("stm32l432", "rp2040", "stm32f746", "esp32"):  # widened columns on M4/M7, bytes elsewhere
        profile = load_profile(device)
        assert model_cost(model, x, profile).scratch_bytes == gen.scratch_for(profile.core) > 0
    assert gen.scratch_for("cortex-m4") >= gen.scratch_for("cortex-m0plus")


def test_cost_model_counts_as_documented():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 10, 3)).eval()
    x = torch.randn(1, 2, 10)
    p = load_profile("stm32l432")
    c = model_cost(model, x, p, kernel_costs=False)  # the profile's MACs per cycle (the table: below)
    weights = (4 * 2 * 3 + 4 * (4 + 8)) + (3 * 40 + 3 * (4 + 8))  # int8 weights + bias/requant per out channel
    assert c.weight_bytes == weights and c.flash_bytes == weights + p.runtime_flash_bytes
    assert c.macs == 4 * 10 * 2 * 3 + 3 * 40
    assert c.latency_ms == pytest.approx(1000 * c.macs / (p.macs_per_cycle["int8"] * p.clock_hz))
    # the M4 widens a dense convolution's columns: 16 bytes per four of its cin * k = 6 inputs per
    # output, 32 for the leftovers, one int8 column, in whole words; the M0+ keeps two int8 columns
    assert c.scratch_bytes == 4 * ((16 * 1 + 32 + 6 + 3) // 4) == 56
    assert model_cost(model, x, load_profile("rp2040"), kernel_costs=False).scratch_bytes == 2 * 2 * 3
    assert c.ram_bytes == c.activation_bytes + c.scratch_bytes + p.runtime_ram_bytes
    fp32 = model_cost(model, x, p, precision="fp32")
    assert fp32.activation_bytes == 4 * c.activation_bytes and fp32.latency_ms > c.latency_ms
    with torch.no_grad():  # unstructured zeros pay off only with sparse storage and kernels
        model[0].weight[:, :, :2] = 0
        model[4].weight[:, :30] = 0
    sparse = model_cost(model, x, p, sparse=True)
    assert sparse.weight_bytes < c.weight_bytes and sparse.executed_macs < c.macs
    checks = check_budget(c, Budget.of(p, latency_ms=1e-6))
    assert [ch.name for ch in checks if not ch.ok] == ["latency"]


@pytest.fixture(scope="module")
def hapt_model():
    from edgeprune.training import TrainConfig, train
    from edgeprune.workflow import load_task
    from edgeprune.zoo import create_model
    task = load_task("hapt")
    model = create_model("har_cnn", num_classes=task.num_classes)
    train(model, task.train, None, TrainConfig(epochs=1, progress=False))
    return model, task


def test_fit_meets_every_constraint_and_writes_a_report(hapt_model, tmp_path):
    from edgeprune.fit import FitConfig, fit
    model, task = hapt_model
    import importlib.util
    litert = importlib.util.find_spec("ai_edge_litert") is not None
    cfg = FitConfig(device="stm32l432", latency_ms=50, searches=("uniform",), finetune_epochs=0, calibration=256,
                    val_samples=512, tflite=litert)
    r = fit(model, task, cfg, out_dir=tmp_path)
    dense = {c.name: c.ok for c in check_budget(r.dense_cost, r.budget)}
    assert not dense["flash"] and not dense["latency"]  # the dense model does not fit this M4
    assert r.fits and all(c.ok for c in r.checks)
    lat = next(c for c in r.checks if c.name == "latency")
    assert 0.5 * 50 < lat.value <= 50  # close to the budget: no width left on the table
    assert 0 < r.accuracy["int8"] <= 1 and r.accuracy["int8_agreement_with_float"] > 0.9
    assert (tmp_path / "model_int8.onnx").exists() and (tmp_path / "report.html").exists()
    summary = json.loads((tmp_path / "fit.json").read_text())
    assert summary["fits"] and summary["device"] == "stm32l432"
    html = (tmp_path / "report.html").read_text()
    assert r.accuracy["int8_c"] > 0 and r.c_code["equal_to_reference"] and r.c_code["text"] > 0
    assert any(c.name == "flash (compiled)" for c in r.checks)
    if litert:  # fit --export tflite: the fitted int8 model in LiteRT
        assert (tmp_path / "model.tflite").exists() and r.c_code["tflite"]["argmax_agreement"] > 0.98
        assert abs(r.accuracy["int8_tflite"] - r.accuracy["int8_c"]) < 0.02
    from edgeprune.deploy.emulate import toolchain_missing
    if toolchain_missing() is None:  # the C that was emitted, run on an emulated Cortex-M4
        emu = r.c_code["emulated"]
        assert emu["core"] == "cortex-m4" and emu["equal_to_reference"] and emu["checked_inputs"] == 20
        row = next(c for c in r.checks if c.name == "latency (emulated)")
        assert row.ok and row.value == pytest.approx(emu["latency_ms"]) and emu["latency_ms"] <= 50
        assert emu["latency_ms"] == pytest.approx(1e3 * emu["instructions"] * emu["cycles_per_instruction"] / 80e6)
        assert 1.0 < emu["cycles_per_instruction"] < 2.0  # loads and taken branches cost more than one
        assert sum(p["instructions"] for p in emu["per_layer"]) == pytest.approx(emu["instructions"])
        assert 0.5 < emu["instructions_per_mac"] < 4  # SMLAD: 2 MACs per instruction at best
    for part in ('id="budget"', "Memory timeline", "Candidates searched", "Per-layer widths", "<svg", 'id="ccode"'):
        assert part in html
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it when run as root)")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (tmp_path / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'id="verdict"' in dom and "fits" in dom and dom.count("<svg") >= 3 and "KiB" in dom


def test_fit_says_early_when_nothing_can_fit(hapt_model):
    from edgeprune.fit import FitConfig, fit
    model, task = hapt_model
    with pytest.raises(ConfigError, match="cannot fit"):
        fit(model, task, FitConfig(device="stm32l432", flash_bytes=1024, quantize=False, finetune_epochs=0))
