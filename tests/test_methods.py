"""Training-time methods: the behaviour that defines each."""
import torch
from torch import nn

from edgeprune.methods import GroupLasso, NetworkSlimming, Polarization, SoftFilterPruning


def _bn_net():
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(6, 2))


def test_slimming_penalty_is_l1_of_bn_scales_and_its_subgradient():
    m = _bn_net()
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([0.5, -1.0, 2.0, 0.1, -0.3, 1.0]))
    slim = NetworkSlimming(strength=0.01)
    p = slim.penalty(m)
    assert torch.isclose(p, torch.tensor(0.01 * 4.9))
    p.backward()
    assert torch.equal(m[1].weight.grad, 0.01 * torch.sign(m[1].weight.detach()))


def test_slimming_finalize_removes_smallest_scales():
    m = _bn_net().eval()
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([0.5, 1e-3, 2.0, 1e-3, 1.3, 1e-3]))
    r = NetworkSlimming().finalize(m, torch.randn(1, 2, 4, 4), prune_ratio=0.5)
    assert sorted(round(v, 3) for v in r.model[1].weight.tolist()) == [0.5, 1.3, 2.0]


def test_polarization_pushes_scales_apart():
    m = _bn_net()
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([0.40, 0.45, 0.50, 0.55, 0.60, 0.65]))
    pol = Polarization(strength=1.0, t=0.5)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        pol.penalty(m).backward()
        opt.step()
        pol.clamp_(m)
    g = m[1].weight.detach()
    assert (g[:3] < 0.1).all() and (g[3:] > 0.6).all()  # polarised around the mean
    # plain L1 on the same start shrinks everything alike instead
    m2 = _bn_net()
    with torch.no_grad():
        m2[1].weight.copy_(torch.tensor([0.40, 0.45, 0.50, 0.55, 0.60, 0.65]))
    opt2 = torch.optim.SGD(m2.parameters(), lr=0.01)
    for _ in range(10):
        opt2.zero_grad()
        NetworkSlimming(1.0).penalty(m2).backward()
        opt2.step()
    assert (m2[1].weight[3:] < 0.65).all()


def test_group_lasso_proximal_step_zeroes_whole_filters():
    m = _bn_net()
    with torch.no_grad():
        m[0].weight[0] *= 1e-3
        m[0].bias[0] = 0.0
    gl = GroupLasso(strength=1.0)
    norms = torch.cat([m[0].weight.flatten(1), m[0].bias[:, None]], 1).norm(dim=1)
    assert torch.isclose(gl.penalty(m), norms.sum() + torch.cat([m[5].weight, m[5].bias[:, None]], 1).norm(dim=1).sum())
    gl.prox_(m, lr=norms[0].item() * 1.01)
    assert torch.count_nonzero(m[0].weight[0]) == 0 and torch.count_nonzero(m[0].weight[1:]) > 0


def test_soft_filter_pruning_lets_zeroed_filters_grow_back():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(1, 4, 1, bias=False), nn.Conv1d(4, 1, 1, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([0.01, 1.0, 1.0, 1.0]).view(4, 1, 1))
        m[1].weight.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]).view(1, 4, 1))  # only filter 0 matters
    x = torch.rand(64, 1, 8)
    sfp = SoftFilterPruning(m, x[:1], prune_ratio=0.25)
    zeroed = sfp.step()
    assert list(zeroed.values())[0] == [0] and m[0].weight[0].abs().sum() == 0
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(50):  # the task needs filter 0: it grows back
        opt.zero_grad()
        ((m(x) - 3 * x) ** 2).mean().backward()
        opt.step()
    assert m[0].weight[0].abs().sum() > 0.1
    result = sfp.finalize()  # zeroes the weakest filter once more, then removes exactly it
    assert result.model[0].out_channels == 3 and result.verification.ok
    with torch.no_grad():
        assert torch.allclose(result.model(x), m(x), atol=1e-6)  # removing zeroed filters changes nothing


def test_layer_pruning_removes_the_block_that_does_least():
    from edgeprune.methods import prune_layers
    from edgeprune.zoo import create_model
    torch.manual_seed(0)
    m = create_model("resnet1d").eval()
    with torch.no_grad():  # block 3's residual branch contributes almost nothing
        m.layers[3].bn2.weight.mul_(1e-4)
        m.layers[3].bn2.bias.zero_()
    x = torch.randn(16, 6, 128)
    r = prune_layers(m, [x], 1, x[:1])
    assert r.removed == ["layers.3"] and isinstance(r.model.layers[3], nn.Identity)
    assert sorted(r.scores) == ["layers.0", "layers.1", "layers.3", "layers.5"]  # blocks that keep their shape
    assert torch.allclose(r.model(x), m(x), atol=1e-2 * float(m(x).abs().max()))


def test_red_merges_duplicate_neurons_without_changing_the_function():
    from edgeprune.methods import merge_redundant
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        m[0].weight[3] = m[0].weight[0]
        m[0].bias[3] = m[0].bias[0]
        m[0].weight[5] = m[0].weight[1]
        m[0].bias[5] = m[0].bias[1]
    x = torch.randn(20, 5)
    r = merge_redundant(m, x)
    assert r.merged == 2 and r.model[0].out_features == 4
    assert torch.allclose(r.model(x), m(x), atol=1e-5)


def test_red_hashing_merges_near_duplicates():
    from edgeprune.methods import merge_redundant
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        m[0].weight[2] = m[0].weight[0] + 1e-4
        m[0].bias[2] = m[0].bias[0]
    x = torch.randn(10, 4)
    assert merge_redundant(m, x).merged == 0  # not exactly equal
    r = merge_redundant(m, x, bins=64)
    assert r.merged >= 1 and r.max_abs_error < 0.2


def test_fbs_gates_different_channels_per_input_and_counts_saved_macs():
    from edgeprune.methods.fbs import FBSConv, dynamic_macs, penalty
    torch.manual_seed(0)
    gate = FBSConv(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), density=0.25)
    with torch.no_grad():  # saliency follows the sign of the mean of input channel 0
        gate.saliency.weight.zero_()
        gate.saliency.weight[:4, 0] = 1.0
        gate.saliency.weight[4:, 0] = -1.0
        gate.saliency.bias.zero_()
    model = nn.Sequential(gate).eval()
    x = torch.zeros(2, 2, 5, 5)
    x[0, 0] += 1.0   # input 0 turns on channels 0-3
    x[1, 0] -= 1.0   # input 1 turns on channels 4-7
    y = model(x)
    a0, a1 = gate.last_active[0].nonzero().flatten().tolist(), gate.last_active[1].nonzero().flatten().tolist()
    assert len(a0) == 2 and len(a1) == 2 and set(a0) <= {0, 1, 2, 3} and set(a1) <= {4, 5, 6, 7}
    off0 = [c for c in range(8) if c not in a0]
    assert y[0, off0].abs().max() == 0  # suppressed channels are exactly zero
    used, dense = dynamic_macs(model, x)
    # 2 of 8 outputs computed, from 1 of 2 inputs (input channel 1 is all zero: nothing to read)
    assert dense == 8 * 25 * 2 * 9 and torch.allclose(used, torch.full((2,), dense * 2 / 8 / 2))
    assert penalty(model, 1.0) > 0
