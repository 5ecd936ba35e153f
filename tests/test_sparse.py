"""Unstructured and N:M sparsity: the behaviour that defines each method."""
import pytest
import torch
from torch import nn

from edgeprune.sparse import (
    DynamicNetworkSurgery,
    GradualMagnitudePruning,
    bitmask_bytes,
    csr_bytes,
    cubic_sparsity,
    global_magnitude,
    lamp_masks,
    lamp_scores,
    layer_magnitude,
    nm_masks,
)


def _two_layers():
    m = nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]))
        m[1].weight.copy_(torch.tensor([[100.0, 200.0], [300.0, 400.0]]))
    return m


def test_global_magnitude_takes_from_the_small_layer_only():
    masks = global_magnitude(_two_layers(), 0.5)
    assert masks.masks["0.weight"].sum() == 2 and masks.masks["1.weight"].all()
    assert masks.sparsity() == 0.5


def test_layer_magnitude_takes_the_same_fraction_everywhere():
    masks = layer_magnitude(_two_layers(), 0.5)
    assert masks.layer_sparsity() == {"0.weight": 0.5, "1.weight": 0.5}


def test_lamp_scores_match_the_formula_and_spread_sparsity():
    s = lamp_scores(torch.tensor([3.0, 1.0, 2.0]))
    assert torch.allclose(s, torch.tensor([9 / 9, 1 / 14, 4 / 13]))
    masks = lamp_masks(_two_layers(), 0.5)
    # scale-free: both layers lose weights, unlike global magnitude
    assert masks.layer_sparsity()["1.weight"] > 0 and masks.layer_sparsity()["0.weight"] > 0
    assert masks.masks["1.weight"].any(), "LAMP never empties a layer"


def test_nm_keeps_the_n_largest_of_every_m():
    m = nn.Linear(8, 3, bias=False)
    masks = nm_masks(m, 2, 4).masks["weight"]
    assert (masks.reshape(3, 2, 4).sum(2) == 2).all()
    w = m.weight.detach().abs().reshape(3, 2, 4)
    kept_min = torch.where(masks.reshape(3, 2, 4), w, torch.inf).min(2).values
    dropped_max = torch.where(~masks.reshape(3, 2, 4), w, -torch.inf).max(2).values
    assert (kept_min >= dropped_max).all()


def test_cubic_schedule():
    assert cubic_sparsity(0, 0.9, 0, 100) == 0.0
    assert cubic_sparsity(100, 0.9, 0, 100) == 0.9
    assert cubic_sparsity(50, 0.9, 0, 100) == pytest.approx(0.9 - 0.9 * 0.125)
    gmp = GradualMagnitudePruning(0.8, begin=0, end=10, every=5)
    model = nn.Linear(50, 20)
    sp = [gmp.step(model, t).sparsity() for t in range(12)]
    assert sp[0] == 0.0 and sp[5] == pytest.approx(0.8 - 0.8 * 0.125, abs=0.01) and sp[10] == pytest.approx(0.8, abs=0.01)
    assert (model.weight == 0).float().mean() == pytest.approx(0.8, abs=0.01)


def test_dns_prunes_below_a_splices_above_b_and_keeps_state_between():
    dns = DynamicNetworkSurgery(c=0.0, lower=0.9, upper=1.1)  # a = 0.9 mean|w|, b = 1.1 mean|w|
    m = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.1, 1.0, 1.0, 1.9]]))  # mean 1.0: a = 0.9, b = 1.1
    masks = dns.update(m).masks["weight"][0].tolist()
    assert masks == [False, True, True, True]  # 0.1 pruned; the 1.0s are between: unchanged (kept)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[2.0, 0.95, 0.5, 0.55]]))  # mean 1.0 again
    masks = dns.update(m).masks["weight"][0].tolist()
    assert masks == [True, True, False, False]  # 2.0 spliced back; 0.95 keeps its state
    dns.forward_weights(m)
    assert m.weight[0, 2] == 0 and m.weight[0, 0] == 2.0
    dns.restore(m)
    assert m.weight[0, 2] == 0.5  # the dense weight keeps training


def test_storage_formats():
    w = torch.zeros(4, 100)
    w[:, :5] = 1.0  # 95 % sparse
    assert bitmask_bytes(w) == 50 + 20
    assert csr_bytes(w) == 5 * 2 + 20 * (1 + 1)
    dense = torch.ones(4, 100)
    assert bitmask_bytes(dense) > dense.numel()  # at 0 % sparsity the mask only costs


def test_wanda_weighs_magnitude_by_input_norm():
    """Row [1.0, 0.2]: input 0 is ~silent, input 1 is loud. Magnitude keeps weight 0; Wanda
    keeps weight 1 (|0.2| x 100 > |1.0| x 0.01)."""
    from edgeprune.sparse import wanda_masks
    m = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 0.2]]))
    x = torch.stack([torch.full((50,), 0.01), torch.full((50,), 100.0)], 1)
    masks = wanda_masks(m, [x], sparsity=0.5).masks["weight"]
    assert masks.tolist() == [[False, True]]
    assert layer_magnitude(m, 0.5).masks["weight"].tolist() == [[True, False]]
    nm = wanda_masks(nn.Linear(8, 2), [torch.randn(10, 8)], n=2, m=4).masks["weight"]
    assert (nm.reshape(2, 2, 4).sum(2) == 2).all()


def test_sparsegpt_updates_weights_and_beats_masking():
    """At the same 50 % sparsity, SparseGPT's weight update reconstructs W X far better than
    keeping the largest weights (the error of a pruned weight is moved onto the others)."""
    from edgeprune.sparse import sparsegpt
    torch.manual_seed(0)
    base = torch.randn(256, 4)
    x = base @ torch.randn(4, 32) + 0.05 * torch.randn(256, 32)  # correlated inputs
    lin = nn.Linear(32, 16, bias=False)
    ref = lin(x).detach()
    mag = layer_magnitude(lin, 0.5)
    w_mag = lin.weight.detach() * mag.masks["weight"]
    masks = sparsegpt(lin, [x], sparsity=0.5)
    assert masks.sparsity() == pytest.approx(0.5, abs=0.01)
    err_sgpt = (lin(x).detach() - ref).pow(2).mean()
    err_mag = (x @ w_mag.T - ref).pow(2).mean()
    assert err_sgpt < 0.25 * err_mag
    lin2 = nn.Linear(32, 16, bias=False)
    masks2 = sparsegpt(lin2, [x], n=2, m=4)
    assert (masks2.masks["weight"].reshape(16, 8, 4).sum(2) == 2).all()


def test_dpf_gradient_reaches_pruned_weights_and_revives_them():
    from edgeprune.sparse import DynamicPruningFeedback
    torch.manual_seed(0)
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.01, 1.0, 1.0, 1.0]]))
    dpf = DynamicPruningFeedback(final_sparsity=0.25, end=0, every=5)
    opt = torch.optim.SGD(lin.parameters(), lr=0.05)
    x = torch.randn(64, 4)
    y = 3.0 * x[:, :1]  # only input 0 matters: its (pruned) weight must come back
    for step in range(40):
        dpf.before_forward(lin, step)
        if step == 0:
            assert lin.weight[0, 0] == 0  # pruned in the forward pass
        opt.zero_grad()
        ((lin(x) - y) ** 2).mean().backward()
        dpf.after_backward(lin)
        assert lin.weight.grad[0, 0] != 0 or step > 0  # the pruned weight gets a gradient
        opt.step()
    masks = dpf.finalize(lin)
    assert masks.masks["weight"][0, 0] and lin.weight[0, 0] > 1.0  # revived and kept


def test_iterative_magnitude_prunes_monotonically_and_retrains_between_rounds():
    from edgeprune.sparse import iterative_magnitude
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 2))
    history = []

    def retrain(model, masks):
        history.append({k: v.clone() for k, v in masks.masks.items()})
        with torch.no_grad():  # a "retraining" that moves every weight, pruned ones included
            for p in model.parameters():
                p.add_(0.01)
    masks = iterative_magnitude(m, 0.875, rounds=3, retrain=retrain)
    assert [round(1 - float(torch.cat([v.flatten() for v in h.values()]).float().mean()), 2) for h in history] == \
        [0.5, 0.75, 0.88]
    for before, after in zip(history, history[1:]):  # once pruned, always pruned
        assert all((~before[k] & after[k]).sum() == 0 for k in before)
    assert masks.sparsity() == pytest.approx(0.875, abs=0.01)
    assert (m[0].weight == 0).float().mean() > 0  # the masks hold after the last retraining


def test_filterlet_pruning_removes_whole_low_norm_kernel_columns():
    # conv 2 -> 3 channels, kernel 3: 9 filterlets (filter o, position k), each the 2 input
    # channels at one tap. Their norms are set by hand; at 1/3 the three smallest columns go,
    # whole (both input channels), unlike magnitude pruning, which picks single weights.
    import edgeprune as ep
    from edgeprune.sparse.filterlet import filterlet_masks
    conv = torch.nn.Conv1d(2, 3, 3)
    with torch.no_grad():
        col = torch.tensor([[3.0, 0.1, 2.0], [0.2, 4.0, 5.0], [1.0, 0.3, 6.0]])  # |column| per (o, k)
        conv.weight.copy_(torch.stack([col * 0.6, col * 0.8], 1))  # norm of each column = col
        conv.weight[0, 0, 0] = 0.01  # a tiny single weight in a strong column: magnitude would take it
    model = torch.nn.Sequential(conv)
    keep = filterlet_masks(model, 1 / 3).masks["0.weight"]
    assert (keep[:, 0] == keep[:, 1]).all()  # constant along the input channels
    assert sorted(map(tuple, (~keep[:, 0]).nonzero().tolist())) == [(0, 1), (1, 0), (2, 1)]
    r = ep.sparsify(model, ep.method_config("filterlet", sparsity=1 / 3))
    assert r.masks.sparsity() == pytest.approx(1 / 3) and r.model[0].weight[0, 0, 0] != 0
    assert ep.sparsify(model, ep.method_config("magnitude", sparsity=1 / 3)).model[0].weight[0, 0, 0] == 0
