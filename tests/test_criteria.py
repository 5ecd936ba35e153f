"""Each criterion's defining behaviour on hand-made weights."""
import math

import pytest
import torch
from torch import nn

import edgeprune as ep


def _two_conv(weights_scale, gamma=None):
    m = nn.Sequential(nn.Conv2d(2, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1, bias=False)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.ones(4, 2, 1, 1) * torch.tensor(weights_scale).view(4, 1, 1, 1))
        m[3].weight.fill_(1.0)
        if gamma is not None:
            m[1].weight.copy_(torch.tensor(gamma))
    return m, torch.randn(1, 2, 3, 3)


def _kept_filters(result, original):
    kept = result.model[0].weight[:, 0, 0, 0]
    return sorted(int((original[0].weight[:, 0, 0, 0] == k).nonzero()[0]) for k in kept)


def test_l1_keeps_largest_filters():
    m, x = _two_conv([0.1, 3.0, 0.2, 2.0])
    r = ep.prune(m, ep.PruneConfig(criterion="l1", prune_ratio=0.5), example_inputs=x)
    assert _kept_filters(r, m) == [1, 3]


def test_l2_differs_from_l1_on_spiky_filters():
    m = nn.Sequential(nn.Conv2d(4, 2, 1, bias=False), nn.Conv2d(2, 1, 1, bias=False)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.5, 0.0, 0.0, 0.0]]).view(2, 4, 1, 1))
        m[1].weight.fill_(1.0)
    x = torch.randn(1, 4, 2, 2)
    r1 = ep.prune(m, ep.PruneConfig(criterion="l1", prune_ratio=0.5), example_inputs=x)
    r2 = ep.prune(m, ep.PruneConfig(criterion="l2", prune_ratio=0.5), example_inputs=x)
    assert r1.model[0].weight[0, 1].item() == 1.0  # L1 4.0 > 2.5: the flat filter stays
    assert r2.model[0].weight[0, 0].item() == 2.5  # L2 2.0 < 2.5: the spiky filter stays


def test_bn_scale_follows_gamma_not_weights():
    m, x = _two_conv([5.0, 4.0, 3.0, 2.0], gamma=[0.01, 0.02, 1.0, 2.0])
    r = ep.prune(m, ep.PruneConfig(criterion="bn_scale", prune_ratio=0.5), example_inputs=x)
    assert _kept_filters(r, m) == [2, 3]


def test_random_is_seeded():
    m, x = _two_conv([1.0, 1.0, 1.0, 1.0])
    with torch.no_grad():
        m[0].weight.copy_(torch.arange(8.0).view(4, 2, 1, 1))
    a = ep.prune(m, ep.PruneConfig(criterion="random", seed=1), example_inputs=x).model[0].weight
    b = ep.prune(m, ep.PruneConfig(criterion="random", seed=1), example_inputs=x).model[0].weight
    assert torch.equal(a, b)


def test_taylor_uses_gradients_not_magnitude():
    """Filter 0 is large but its output is never used by the loss (the next layer ignores it):
    magnitude keeps it, Taylor removes it."""
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[9.0, 9, 9], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
        m[0].bias.zero_()
        m[2].weight.copy_(torch.tensor([[0.0, 1, -1, 1], [0.0, -1, 1, 1]]))
        m[2].bias.zero_()
    data = [(torch.randn(16, 3).abs(), torch.randint(0, 2, (16,))) for _ in range(2)]
    x = torch.randn(1, 3)
    mag = ep.prune(m, ep.PruneConfig(criterion="l1", prune_ratio=0.25), example_inputs=x)
    tay = ep.prune(m, ep.PruneConfig(criterion="taylor", prune_ratio=0.25), example_inputs=x, data=data)
    assert mag.model[0].weight[0, 0].item() == 9.0
    assert 9.0 not in tay.model[0].weight[:, 0].tolist()


def test_custom_criterion_is_one_function():
    @ep.register_criterion("first_is_best")
    def first(group, ctx):
        return -torch.arange(len(group), dtype=torch.float)
    m, x = _two_conv([1.0, 2.0, 3.0, 4.0])
    r = ep.prune(m, ep.PruneConfig(criterion="first_is_best", prune_ratio=0.5), example_inputs=x)
    assert _kept_filters(r, m) == [0, 1]


def test_fpgm_removes_the_replaceable_filter_not_the_smallest():
    """1-D filters -4, 4, 5, 6, 0.1: the one nearest the others (4) goes under FPGM, the
    smallest (0.1) under L1."""
    m = nn.Sequential(nn.Conv1d(1, 5, 1, bias=False), nn.Conv1d(5, 1, 1, bias=False)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([-4.0, 4.0, 5.0, 6.0, 0.1]).view(5, 1, 1))
        m[1].weight.fill_(1.0)
    x = torch.randn(1, 1, 3)
    cfg = dict(prune_ratio=0.2)
    f = ep.prune(m, ep.PruneConfig(criterion="fpgm", **cfg), example_inputs=x).model[0].weight.flatten().tolist()
    l1 = ep.prune(m, ep.PruneConfig(criterion="l1", **cfg), example_inputs=x).model[0].weight.flatten().tolist()
    assert 4.0 not in f and 0.1 in [round(v, 1) for v in f]
    assert 4.0 in l1 and 0.1 not in [round(v, 1) for v in l1]


def _gated_conv():
    """Channel 0 has the largest weights but a bias that keeps it below zero: after the ReLU it
    is always 0."""
    m = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.Conv2d(3, 1, 1)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[5.0, 5.0], [1.0, -1.0], [0.5, 1.0]]).view(3, 2, 1, 1))
        m[0].bias.copy_(torch.tensor([-100.0, 0.0, 0.0]))
        m[2].weight.fill_(1.0)
    return m


def test_apoz_removes_the_always_zero_channel():
    m = _gated_conv()
    data = [(torch.randn(8, 2, 4, 4), torch.zeros(8))]
    x = torch.randn(1, 2, 4, 4)
    r = ep.prune(m, ep.PruneConfig(criterion="apoz", prune_ratio=0.34), example_inputs=x, data=data)
    assert -100.0 not in r.model[0].bias.tolist()
    r1 = ep.prune(m, ep.PruneConfig(criterion="l1", prune_ratio=0.34), example_inputs=x)
    assert -100.0 in r1.model[0].bias.tolist()
    r2 = ep.prune(m, ep.PruneConfig(criterion="mean_activation", prune_ratio=0.34), example_inputs=x, data=data)
    assert -100.0 not in r2.model[0].bias.tolist()


def test_hrank_removes_low_rank_feature_maps():
    """Input channel 1 holds rank-1 images; the filter reading it (largest weight) makes
    rank-1 maps and goes first under HRank."""
    m = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.ReLU(), nn.Conv2d(3, 1, 1)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 9.0], [1.0, 0.0]]).view(3, 2, 1, 1))
    u, v = torch.rand(8, 6, 1), torch.rand(8, 1, 6)
    x = torch.stack([torch.rand(8, 6, 6), u @ v], 1)
    r = ep.prune(m, ep.PruneConfig(criterion="hrank", prune_ratio=0.34), example_inputs=x[:1], data=[x])
    assert 9.0 not in r.model[0].weight.flatten().tolist()


def test_activation_criteria_need_data():
    m = _gated_conv()
    with pytest.raises(ep.ConfigError, match="calibration data"):
        ep.prune(m, ep.PruneConfig(criterion="apoz"), example_inputs=torch.randn(1, 2, 4, 4))


def test_l1_ranks_a_transposed_convolution_by_its_filters_alone():
    # ConvTranspose2d's weight is (in, out, kh, kw): its filters are axis 1. The rules tag that
    # axis "out"; the old shape guess ("dim 0 of a 2-D+ tensor") found no filter in the group
    # and summed every tensor, BatchNorm's scale and shift and the consumer's columns included.
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 6, 3, padding=1), nn.BatchNorm2d(6),
                      nn.ReLU(), nn.Conv2d(6, 2, 1)).eval()
    filter_l1 = torch.tensor([0.2, 3.0, 0.4, 2.0, 0.6, 1.0])  # |W_T[:, c]| summed: channels 0, 2, 4 are weakest
    with torch.no_grad():
        w = m[1].weight
        w.copy_(w.sign() * filter_l1.view(1, 6, 1, 1) / w[0].numel() / 4)  # each of the 4x9 entries equal in size
        m[1].bias.zero_()
        m[2].weight.copy_(torch.tensor([9.0, 0.1, 9.0, 0.1, 9.0, 0.1]))  # BN would rank the other way
        m[2].bias.copy_(torch.tensor([5.0, 0.0, 5.0, 0.0, 5.0, 0.0]))
        m[4].weight.copy_(torch.tensor([[8.0, 0.1, 8.0, 0.1, 8.0, 0.1]] * 2).view(2, 6, 1, 1))
    r = ep.prune(m, ep.PruneConfig(criterion="l1", prune_ratio=0.5, ignore=("0",)),
                 example_inputs=torch.randn(1, 3, 8, 8))
    assert r.verification.ok
    assert r.plan.removed["1.weight"][1] == [0, 2, 4]
    assert r.plan.removed["2.weight"][0] == [0, 2, 4] and r.plan.removed["4.weight"][1] == [0, 2, 4]


def test_entropy_matches_hand_computed_values():
    from edgeprune.criteria.entropy import channel_entropy
    v = torch.tensor([[0.0, 0.0, 5.0], [0.0, 1.0, 5.0], [1.0, 2.0, 5.0], [1.0, 3.0, 5.0]])
    h = channel_entropy(v, bins=4)
    # column 0: two values, two each -> ln 2; column 1: four values, one per bin -> ln 4; column 2: constant -> 0
    assert torch.allclose(h, torch.tensor([math.log(2), math.log(4), 0.0]), atol=1e-6)
    # 3 of 4 samples in one bin, 1 in another: -(3/4 ln 3/4 + 1/4 ln 1/4)
    h2 = channel_entropy(torch.tensor([[0.0], [0.0], [0.0], [1.0]]), bins=10)
    assert h2.item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-6)


def test_entropy_removes_the_channel_whose_output_ignores_the_input():
    # channel 0 always outputs 10 (zero filter, bias 10): the largest mean activation and a large
    # bias, but it tells nothing about the input; channels 1-3 follow the input, with smaller outputs
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8, 2)).eval()
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))
        m[0].weight[1:, 0, 1] = torch.tensor([0.5, 0.8, 1.2])
    data = [(torch.rand(16, 1, 8), torch.zeros(16, dtype=torch.long)) for _ in range(4)]
    x = torch.rand(1, 1, 8)
    by_entropy = ep.prune(m, ep.PruneConfig(criterion="entropy", prune_ratio=0.25), example_inputs=x, data=data)
    by_mean = ep.prune(m, ep.PruneConfig(criterion="mean_activation", prune_ratio=0.25), example_inputs=x, data=data)
    assert by_entropy.verification.ok
    assert by_entropy.plan.removed["0.weight"][0] == [0]
    assert by_mean.plan.removed["0.weight"][0] == [1]  # the weakest varying channel: not what entropy removes
