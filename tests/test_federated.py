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


def _credentials(tmp_path, devices=0):
    out = tmp_path / "certs"
    made = subprocess.run([sys.executable, "-m", "edgeprune.cli.main", "federated", "certs", "--out", str(out),
                           "--devices", str(devices) if devices else "1"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert (out / "server.key").stat().st_mode & 0o077 == 0  # private keys: owner only
    return out


def test_real_server_and_devices_over_grpc_with_tls(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "history.json"
    certs = _credentials(tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "edgeprune.cli.main", "federated"]
    server = subprocess.Popen(cli + ["serve", "--address", address, "--method", "pqsu", "--rounds", "2",
                                     "--min-devices", "3", "--history", str(out),
                                     "--ssl-ca-certfile", str(certs / "ca.crt"), "--ssl-certfile",
                                     str(certs / "server.pem"), "--ssl-keyfile", str(certs / "server.key")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    devices = [subprocess.Popen(cli + ["device", "--address", address, "--user", str(u), "--root-certificates",
                                       str(certs / "ca.crt")], env=env,
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


def test_plain_text_needs_an_explicit_insecure(tmp_path, capsys):
    from edgeprune.cli.main import main
    assert main(["federated", "device", "--user", "1"]) == 2
    assert "--insecure" in capsys.readouterr().err
    assert main(["federated", "app", "--out", str(tmp_path / "app")]) == 2
    assert "--root-certificates" in capsys.readouterr().err and not (tmp_path / "app").exists()


def _kill_group(p: subprocess.Popen) -> None:
    import signal
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)


def _kill_mentioning(ports: list[int]) -> None:
    """Flower's SuperLink and SuperNodes start SuperExec processes in sessions of their own: find
    them by the ports on their command lines."""
    import signal
    from pathlib import Path
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="ignore")
        except OSError:
            continue
        if "flower" in cmd or "flwr" in cmd:
            if any(f":{port}" in cmd for port in ports):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except OSError:
                    pass


def test_flower_app_with_tls_and_authenticated_supernodes(tmp_path):
    """Flower's Deployment Runtime, secured: a SuperLink with TLS and SuperNode authentication,
    three registered SuperNodes (HAPT users 1-3) and the Flower App that `edgeprune federated
    app` writes, submitted with `flwr run`; a fourth SuperNode whose key was never registered
    is refused."""
    bindir = os.path.dirname(sys.executable)
    port = _free_port()
    certs = _credentials(tmp_path, devices=4)
    app, ckpt = tmp_path / "app", tmp_path / "ckpt"
    made = subprocess.run([sys.executable, "-m", "edgeprune.cli.main", "federated", "app", "--out", str(app),
                           "--superlink", f"127.0.0.1:{port}", "--root-certificates", str(certs / "ca.crt"),
                           "--method", "pqsu", "--rounds", "2", "--min-devices", "3", "--checkpoint", str(ckpt)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}", "FLWR_HOME": str(app / "flower"),
           "PYTHONWARNINGS": "ignore"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    procs = [subprocess.Popen([f"{bindir}/flower-superlink", "--ssl-ca-certfile", str(certs / "ca.crt"),
                               "--ssl-certfile", str(certs / "server.pem"), "--ssl-keyfile", str(certs / "server.key"),
                               "--enable-supernode-auth", "--port", str(port), "--database",
                               str(tmp_path / "state.db")], **quiet)]
    ports = [port]
    try:
        time.sleep(4)
        for u in (1, 2, 3):
            reg = subprocess.run([f"{bindir}/flwr", "supernode", "register", str(certs / f"device{u}.pub"),
                                  "edgeprune"], env=env, capture_output=True, text=True, timeout=60)
            assert reg.returncode == 0, reg.stdout + reg.stderr
        nodes = []
        for u in (1, 2, 3, 4):
            ports.append(_free_port())
            nodes.append(subprocess.Popen([f"{bindir}/flower-supernode", "--root-certificates", str(certs / "ca.crt"),
                                           "--auth-supernode-private-key", str(certs / f"device{u}.key"),
                                           "--superlink", f"127.0.0.1:{port}", "--port", str(ports[-1]),
                                           "--node-config", f"user={u}"], **quiet))
        procs += nodes
        assert nodes[3].wait(timeout=60) != 0  # never registered: refused by the SuperLink
        run = subprocess.run([f"{bindir}/flwr", "run", str(app), "edgeprune", "--stream"], env=env,
                             capture_output=True, text=True, timeout=400)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        assert all(n.poll() is None for n in nodes[:3])
    finally:
        for p in procs:
            _kill_group(p)
        _kill_mentioning(ports)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["round"] == 2
    rounds = state["history"]["rounds"]
    assert [r["accepted"] for r in rounds] == [3, 3] and rounds[-1]["accuracy"] > 0.3


def test_flower_app_refuses_unknown_config_and_used_folders(tmp_path):
    from edgeprune.errors import ConfigError
    from edgeprune.federated.deploy import write_app
    certs = _credentials(tmp_path)
    out = write_app(tmp_path / "a", "10.0.0.2:8000", root_certificates=certs / "ca.crt", method="prunefl", rounds=7)
    text = (out / "pyproject.toml").read_text()
    assert 'method = "prunefl"' in text and "rounds = 7" in text
    flower = (out / "flower" / "config.toml").read_text()
    assert 'address = "10.0.0.2:8000"' in flower and str((certs / "ca.crt").resolve()) in flower
    assert "insecure" not in flower
    with pytest.raises(ConfigError, match="--force"):
        write_app(out, insecure=True)
    assert "insecure = true" in (write_app(out, insecure=True, force=True) / "flower" / "config.toml").read_text()
    with pytest.raises(ValueError, match="no run config key"):
        write_app(tmp_path / "b", insecure=True, bogus=1)


def test_membership_auc_and_calibrated_attack():
    import numpy as np
    import torch
    from torch import nn

    from edgeprune.federated.privacy import auc, calibrated_membership_auc
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0  # members all score higher
    assert auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5  # ties: chance
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    data = (torch.randn(20, 4), torch.randint(0, 3, (20,)))
    assert calibrated_membership_auc(model, model, data, data) == 0.5  # nothing learnt: no loss drop


def _memorised(seed=0):
    """A model trained to memorise random labels: a strong membership signal."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    members = (torch.randn(64, 8), torch.randint(0, 4, (64,)))
    reference = (torch.randn(64, 8), torch.randint(0, 4, (64,)))
    start = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    model = __import__("copy").deepcopy(start)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(members[0]), members[1]).backward()
        opt.step()
    return model, start, members, reference


def test_memdefense_prunes_updates_towards_chance_within_the_tolerance():
    import torch

    from edgeprune.federated.privacy import membership_auc, memdefense
    model, start, members, reference = _memorised()
    before = [p.detach().clone() for p in model.parameters()]
    auc0 = membership_auc(model, members, reference)
    assert auc0 > 0.8
    out = memdefense(model, members, reference, max_fraction=0.5, tolerance=1.0, start=start, quantile=1.0)
    assert out["auc_before"] == auc0 and 0 < out["fraction"] <= 0.5
    assert abs(out["auc_after"] - 0.5) < 0.1  # pruning the most gap-widening updates brings it near chance
    assert abs(membership_auc(model, members, reference) - out["auc_after"]) < 1e-9  # applied in place
    for p, b, s in zip(model.parameters(), before, start.parameters()):
        changed = p.detach() != b
        if p.ndim > 1:  # pruned weights go back to the received value (the update is pruned)
            assert torch.equal(p.detach()[changed], s.detach()[changed])
        else:
            assert not changed.any()  # biases untouched
    strict, start2, members2, reference2 = _memorised()
    out = memdefense(strict, members2, reference2, max_fraction=0.5, tolerance=0.0, start=start2)
    assert out["acc_after"] >= out["acc_before"]  # never trades reference accuracy beyond the tolerance


def test_block_split_leaves_no_neighbour_of_a_held_window():
    import torch

    from edgeprune.federated.privacy import block_split
    kept, held = block_split(200, 0.2, torch.Generator().manual_seed(0), block=10)
    assert len(held) == 40 and len(set(kept.tolist()) & set(held.tolist())) == 0
    h = set(held.tolist())
    assert all(k - 1 not in h and k + 1 not in h for k in kept.tolist())
    kept, held = block_split(50, 0.0, torch.Generator().manual_seed(0))
    assert len(kept) == 50 and len(held) == 0


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
    # per-weight times: with equal promise, the weights that cost less time come back first
    w2 = [np.ones((10, 10), dtype=np.float32), np.ones((10, 10), dtype=np.float32)]
    g2 = [np.full((10, 10), 5.0, dtype=np.float32), np.full((10, 10), 5.0, dtype=np.float32)]
    half = [np.zeros((10, 10), bool), np.zeros((10, 10), bool)]
    half[0][:5], half[1][:5] = True, True
    m = prunefl.adjust(w2, g2, {0: half[0], 1: half[1]}, [0, 1], max_drop=0.0, times=[1.0, 4.0])
    assert m[0].sum() > m[1].sum()
    # in a federation: the mask changes at the adjustment round and transfers turn sparse
    cfg = FedConfig(rounds=4)
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:4]
    s = _strategy(clients, test, kwargs, "prunefl")
    s.prunefl_interval, s.prunefl_initial = 2, False
    history = simulate(clients, s, 4)
    assert s.mask_version == 2 and prunefl.density(s.masks) < 0.9
    assert history.rounds[2].bytes_up < 0.8 * history.rounds[0].bytes_up  # round 3: sparse, no gradients
    assert history.rounds[3].bytes_down < history.rounds[0].bytes_down
    assert all(r.accepted == 4 for r in history.rounds)


def test_prunefl_initial_pruning_on_one_device_then_sparse_rounds(tmp_path):
    import numpy as np

    from edgeprune.federated import prunefl
    clients, test, kwargs = hapt_devices(FedConfig())
    clients = clients[:4]
    s = _strategy(clients, test, kwargs, "prunefl", tmp_path)
    history = simulate(clients, s, 2)
    first, second = history.rounds
    assert first.accepted == 1 and s.mask_version == 1  # only the selected device worked in round 1
    assert prunefl.density(s.masks) < 0.9  # it pruned before federated training began
    assert second.accepted == 4 and second.bytes_up < 4 * first.bytes_up * 0.9  # kept values only
    for i, m in s.masks.items():  # the global model holds zeros where the mask is off
        assert not s.model.state_dict()[list(s.model.state_dict())[i]].numpy()[~m].any()
    again = _strategy(clients, test, kwargs, "prunefl", tmp_path)  # a restarted server keeps the mask
    assert again.mask_version == s.mask_version and all(np.array_equal(again.masks[i], m) for i, m in s.masks.items())


def test_membership_holdout_windows_are_never_given_to_devices():
    import torch

    from edgeprune.federated.experiment import hapt_holdout
    cfg = FedConfig(mia_holdout=0.2)
    clients, _, _ = hapt_devices(cfg)
    hx, _ = hapt_holdout(cfg)
    full, _, _ = hapt_devices(FedConfig())
    n_full = sum(len(c.y) for c in full)
    assert 0.95 * n_full < sum(len(c.y) for c in clients) + len(hx) < n_full  # neighbours of held blocks dropped
    dev = torch.cat([c.x for c in clients]).reshape(-1, 6 * 128)
    held = hx.reshape(-1, 6 * 128)
    assert not (torch.cdist(held[:50], dev).min(1).values == 0).any()  # no held-out window is on a device
    # windows overlap by half: no held-out window may share its first or last half with a device's
    dx = torch.cat([c.x for c in clients])
    first, last = dx[..., :64].reshape(len(dx), -1), dx[..., 64:].reshape(len(dx), -1)
    assert (torch.cdist(hx[..., 64:].reshape(len(hx), -1), first).min(1).values > 0).all()
    assert (torch.cdist(hx[..., :64].reshape(len(hx), -1), last).min(1).values > 0).all()


def _image_npz(path, n=300):
    import numpy as np
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c + 4:2 * c + 7, 4:24] = 255  # a bar whose height gives the label: learnable
    np.savez(path, x_train=x, y_train=y, x_test=x[:100], y_test=y[:100])
    return path


def test_image_partitions_iid_and_dirichlet_with_disjoint_nonmembers(tmp_path):
    import torch

    from edgeprune.federated.experiment import image_devices
    npz = str(_image_npz(tmp_path / "m.npz"))
    clients, test, kwargs, non = image_devices(FedConfig(dataset="mnist", npz=npz, devices=5, mia_holdout=0.2))
    assert [len(c.y) for c in clients] == [48] * 5 and kwargs["in_channels"] == 1
    held = torch.cat([x for x, _ in non.values()]).reshape(-1, 784)
    for c in clients:
        assert torch.cdist(held, c.x.reshape(len(c.x), -1)).min() > 0  # non-members never on a device
    skew, _, _, _ = image_devices(FedConfig(dataset="mnist", npz=npz, devices=5, partition="dirichlet", alpha=0.1))
    assert sum(len(c.y) for c in skew) == 300
    top_share = [torch.bincount(c.y, minlength=10).max().item() / len(c.y) for c in skew if len(c.y) > 10]
    iid_share = [torch.bincount(c.y, minlength=10).max().item() / len(c.y) for c in clients]
    assert sum(top_share) / len(top_share) > sum(iid_share) / len(iid_share) + 0.2  # few classes per device


def test_memdefense_federated_run_on_partitioned_images_reports_the_attacks(tmp_path):
    npz = str(_image_npz(tmp_path / "m.npz"))
    h = run_federated(FedConfig(method="memdefense", dataset="mnist", npz=npz, devices=3, rounds=3, mia_holdout=0.2,
                                local_epochs=3))
    assert len(h.rounds) == 3 and all(r.accepted == 3 for r in h.rounds)
    assert all(r.client_seconds > 0 for r in h.rounds)
    assert h.rounds[-1].accuracy > 0.3  # learnable data; the defence keeps training useful
    for v in (h.membership_auc, h.upload_membership_auc, h.upload_calibrated_auc):
        assert v is not None and 0.0 <= v <= 1.0


def test_device_profiles_limit_which_devices_train_the_model():
    clients, test, kwargs = hapt_devices(FedConfig())
    clients = clients[:4]
    profiles = {c.cid: p for c, p in zip(clients, ("rp2040", "stm32l432", "nrf52840", "esp32"))}

    def run(method):
        s = EdgeStrategy("har_cnn", kwargs, create_model("har_cnn", **kwargs), clients[0].x[:1], test, method,
                         min_fit_clients=1, min_available_clients=4, device_profiles=profiles, latency_ms=200,
                         enforce_profiles=True)
        return simulate(clients, s, 1).rounds[0]
    dense, pruned = run("fedavg"), run("pqsu")
    assert dense.excluded > pruned.excluded  # the dense model is too big for some of the devices
    assert dense.accepted + dense.excluded == 4 and pruned.accepted + pruned.skipped + pruned.excluded == 4
    with pytest.raises(ValueError, match="fits none"):
        EdgeStrategy("har_cnn", kwargs, create_model("har_cnn", **kwargs), clients[0].x[:1], test, "fedavg",
                     device_profiles={"a": "rp2040"}, latency_ms=0.001, enforce_profiles=True)
