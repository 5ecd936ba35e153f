"""The HAPT loader keeps its promises on the real shipped data."""
import numpy as np
import pytest

from edgeprune.data.hapt import DATA_FILE, _windows, load_hapt


@pytest.fixture(scope="module")
def hapt():
    return load_hapt()


def test_shapes_and_classes(hapt):
    assert hapt.x.shape[1:] == (6, 128) and hapt.x.dtype == np.float32
    assert set(np.unique(hapt.y)) == set(range(6))
    assert len(load_hapt(transitions=True).classes) == 12


def test_split_by_user_is_disjoint_and_complete(hapt):
    tr, va, te = (set(s) for s in hapt.split)
    assert not (tr & va or tr & te or va & te) and tr | va | te == set(range(1, 31))
    assert len(hapt.train()[0]) + len(hapt.val()[0]) + len(hapt.test()[0]) == len(hapt.x)
    assert set(np.unique(hapt.user[np.isin(hapt.user, list(te))])) == te


def test_normalisation_fitted_on_train_only(hapt):
    xtr = hapt.train()[0].numpy()
    assert np.allclose(xtr.mean(axis=(0, 2)), 0, atol=1e-3) and np.allclose(xtr.std(axis=(0, 2)), 1, atol=1e-2)
    xte = hapt.test()[0].numpy()
    assert not np.allclose(xte.mean(axis=(0, 2)), 0, atol=1e-3)


def test_windows_never_cross_breaks():
    with np.load(DATA_FILE) as d:
        lab, usr, ses, pos = d["labels"], d["user"], d["session"], d["position"]
        sig = d["signals"]
    starts = _windows(sig, lab, usr, ses, pos, 128, 64)
    idx = starts[:, None] + np.arange(128)[None, :]
    assert (lab[idx] == lab[starts][:, None]).all()
    assert (usr[idx] == usr[starts][:, None]).all() and (ses[idx] == ses[starts][:, None]).all()
    assert (np.diff(pos[idx], axis=1) == 1).all()


def test_window_rules_on_synthetic_data():
    n = 20
    lab = np.array([1] * 10 + [2] * 10)
    usr = np.ones(n, int)
    ses = np.zeros(n, int)
    pos = np.arange(n)
    pos[5:] += 3  # a gap after sample 4
    starts = _windows(np.zeros((n, 6)), lab, usr, ses, pos, 4, 2)
    # runs: [0,5) label 1, [5,10) label 1 after the gap, [10,20) label 2
    assert starts.tolist() == [0, 5, 10, 12, 14, 16]


def test_per_user_access(hapt):
    x, y = hapt.user_data(7)
    assert len(x) > 100 and len(x) == (hapt.user == 7).sum()
