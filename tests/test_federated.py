"""Federated learning on Flower: simulation through Flower's server loop with faulty devices,
FL-PQSU's traffic saving, resuming from a checkpoint, and real processes over gRPC."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("flwr")

from edgeprune.federated.experiment import FedConfig, hapt_devices, run_federated  # noqa: E402
from edgeprune.federated.simulation import simulate  # noqa: E402
from edgeprune.federated.strategy import EdgeStrategy  # noqa: E402
from edgeprune.zoo import create_model  # noqa: E402


def _strategy(clients, test, kwargs, method="fedavg", checkpoint_dir=None):
    return EdgeStrategy("har_cnn", kwargs, create_model("har_cnn", **kwargs), clients[0].x[:1], test, method,
                        min_fit_clients=2, min_available_clients=len(clients), checkpoint_dir=checkpoint_dir)


def test_bad_updates_are_rejected_and_failures_counted():
    cfg = FedConfig(rounds=2, faults=((0, "nan"), (1, "shape"), (2, "drop")))
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:6]
    strategy = _strategy(clients, test, kwargs)
    history = simulate(clients, strategy, 2)
    assert [r.round for r in history.rounds] == [1, 2]
    for r in history.rounds:
        assert r.rejected == 2 and r.failed == 1 and r.accepted == 3
    assert any("non-finite" in why for why in history.rejected)
    assert any("do not match" in why for why in history.rejected)
    assert history.rounds[-1].accuracy > 0.3  # the good devices still train a useful model


def test_slow_device_times_out_and_the_round_goes_on():
    cfg = FedConfig(rounds=1, faults=((0, "slow"),))
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:3]
    clients[0].slow_seconds = 30
    history = simulate(clients, _strategy(clients, test, kwargs), 1, round_timeout=10)
    assert history.rounds[0].failed == 1 and history.rounds[0].accepted == 2


def test_pqsu_sends_far_less_than_fedavg():
    cfg = FedConfig(rounds=3)
    dense = run_federated(cfg)
    pqsu = run_federated(FedConfig(rounds=3, method="pqsu"))
    # pruned once (about a quarter of the weights at ratio 0.5) and 8-bit: more than 10x less traffic
    assert dense.total_bytes > 10 * pqsu.total_bytes
    assert pqsu.rounds[-1].accuracy > 0.5 and dense.rounds[-1].accuracy > 0.5
    assert sum(r.client_macs for r in pqsu.rounds) < 0.5 * sum(r.client_macs for r in dense.rounds)


def test_server_restart_resumes_from_its_checkpoint(tmp_path):
    cfg = FedConfig(rounds=2)
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:4]
    simulate(clients, _strategy(clients, test, kwargs, "pqsu", tmp_path), 2)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["round"] == 2
    again = _strategy(clients, test, kwargs, "pqsu", tmp_path)  # a new server process
    assert again.done_rounds == 2 and again.plan_json == state["plan"]
    history = simulate(clients, again, 3)  # one more round, numbered 3
    assert [r.round for r in history.rounds] == [1, 2, 3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_and_devices_over_grpc(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "history.json"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "edgeprune.cli.main", "federated"]
    server = subprocess.Popen(cli + ["serve", "--address", address, "--method", "pqsu", "--rounds", "2",
                                     "--min-devices", "3", "--history", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    devices = [subprocess.Popen(cli + ["device", "--address", address, "--user", str(u)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for u in (1, 2, 3)]
    try:
        server.wait(timeout=240)
    finally:
        for p in devices + [server]:
            if p.poll() is None:
                p.kill()
    assert server.returncode == 0, server.stdout.read()[-2000:]
    history = json.loads(out.read_text())
    assert [r["round"] for r in history["rounds"]] == [1, 2]
    assert all(r["accepted"] == 3 for r in history["rounds"]) and history["total_bytes"] > 0


def test_membership_auc_and_memdefense_perturbation():
    import numpy as np
    from edgeprune.federated.privacy import auc, perturb_update
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0  # members all score higher
    assert auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5  # ties: chance
    g = [np.ones((10, 10), dtype=np.float32)]
    local = [g[0].copy()]
    local[0][0, :5] += 5.0  # five entries moved a lot
    local[0][1, :] += 0.1  # ten moved a little
    out = perturb_update(local, g, 0.05)[0]
    assert np.array_equal(out[0, :5], g[0][0, :5])  # the most member-specific changes are withheld
    assert np.allclose(out[1], local[0][1])  # the rest is sent as trained


def test_personal_submodels_fit_each_profile_nest_and_average_where_held():
    import numpy as np
    import torch
    from edgeprune.devices import Budget, check_budget, load_profile, model_cost
    from edgeprune.federated.model import build
    from edgeprune.federated.personal import Personaliser
    torch.manual_seed(0)
    model = create_model("har_cnn").eval()
    x = torch.randn(1, 6, 128)
    p = Personaliser(model, x, {"small": "rp2040", "big": "nrf52840"}, latency_ms=150)
    ws, plan_s, js = p.submodel("small")
    wb, plan_b, jb = p.submodel("big")
    for cid, j in (("small", js), ("big", jb)):
        prof = load_profile(p.profiles[cid])
        cost = model_cost(build("har_cnn", {}, j), x, prof)
        assert all(c.ok for c in check_budget(cost, Budget.of(prof, latency_ms=150)))
    assert p.keep_for("small") < p.keep_for("big")
    name = "features.0.weight"
    kept = lambda plan: set(range(64)) - set(plan.removed.get(name, {}).get(0, []))  # noqa: E731
    assert kept(plan_s) < kept(plan_b)  # nested: the same ranking for everyone
    ones = [np.ones_like(a) for a in ws]
    threes = [np.full_like(a, 3.0) for a in wb]
    new = p.aggregate([(ones, plan_s, 1), (threes, plan_b, 1)])[0]  # features.0.weight
    both, only_big = sorted(kept(plan_s))[0], sorted(kept(plan_b) - kept(plan_s))[0]
    assert np.allclose(new[both], 2.0) and np.allclose(new[only_big], 3.0)
    missing = sorted(set(range(64)) - kept(plan_b))
    if missing:
        assert np.allclose(new[missing[0]], model.state_dict()[name][missing[0]].numpy())


def test_sparse_uplink_codec_roundtrip():
    import numpy as np
    from flwr.common import ndarrays_to_parameters
    from edgeprune.federated.codec import decode_sparse, encode_sparse, nbytes
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(64, 32, 3)).astype(np.float32), rng.normal(size=64).astype(np.float32)]
    enc = encode_sparse(arrays, 0.8)
    dec = decode_sparse(enc, [a.shape for a in arrays])
    kept = dec[0] != 0
    assert kept.sum() == round(0.2 * arrays[0].size)  # the largest 20 % survive
    assert np.abs(arrays[0])[kept].min() >= np.abs(arrays[0])[~kept].max()
    step = (arrays[0][kept].max() - arrays[0][kept].min()) / 255
    assert np.abs(dec[0][kept] - arrays[0][kept]).max() <= step / 2 + 1e-6
    assert nbytes(ndarrays_to_parameters(enc)) < 0.2 * nbytes(ndarrays_to_parameters(arrays))
    with pytest.raises(ValueError):
        decode_sparse(enc[:-1], [a.shape for a in arrays])


def test_prunefl_adjusts_the_mask_from_gradients_and_goes_sparse():
    import numpy as np
    from edgeprune.federated import prunefl
    w = [np.arange(1, 101, dtype=np.float32).reshape(10, 10)]
    g2 = [np.zeros((10, 10), dtype=np.float32)]
    g2[0][0, 0] = 1e6  # the smallest weight has by far the largest squared gradient
    masks = prunefl.adjust(w, g2, {}, [0], max_drop=0.3, overhead=0.1)
    m = masks[0]
    assert m[0, 0]  # re-added: its gradient promises the most per unit of time
    assert m.sum() == 71 and not m[0, 1:].any() and not m[1, :].any()  # 30 smallest dropped, one back
    # in a federation: the mask changes at the adjustment round and transfers turn sparse
    cfg = FedConfig(rounds=4)
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:4]
    s = _strategy(clients, test, kwargs, "prunefl")
    s.prunefl_interval = 2
    history = simulate(clients, s, 4)
    assert s.mask_version == 2 and prunefl.density(s.masks) < 0.9
    assert history.rounds[2].bytes_up < 0.8 * history.rounds[0].bytes_up  # round 3: sparse, no gradients
    assert history.rounds[3].bytes_down < history.rounds[0].bytes_down
    assert all(r.accepted == 4 for r in history.rounds)


def test_membership_holdout_windows_are_never_given_to_devices():
    import torch
    from edgeprune.federated.experiment import hapt_holdout
    cfg = FedConfig(mia_holdout=0.2)
    clients, _, _ = hapt_devices(cfg)
    hx, _ = hapt_holdout(cfg)
    full, _, _ = hapt_devices(FedConfig())
    assert sum(len(c.y) for c in clients) + len(hx) == sum(len(c.y) for c in full)
    dev = torch.cat([c.x for c in clients]).reshape(-1, 6 * 128)
    held = hx.reshape(-1, 6 * 128)
    assert not (torch.cdist(held[:50], dev).min(1).values == 0).any()  # no held-out window is on a device
