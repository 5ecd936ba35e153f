"""Retraining-free recovery: batch-norm re-calibration and least-squares reconstruction."""
import copy

import torch
from torch import nn

import edgeprune as ep
from edgeprune.recovery import bn_recalibrate, reconstruct


def test_reconstruction_recovers_duplicated_channels_exactly():
    """Hidden units 4-7 copy units 0-3. Pruning them loses half of the next layer's input, but
    least squares folds their contribution into the kept columns: the function is unchanged."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        m[0].weight[4:] = m[0].weight[:4]
        m[0].bias[4:] = m[0].bias[:4]
        m[0].weight[4:] *= 1.0  # identical units
    plan = ep.PrunePlan(removed={"0.weight": {0: [4, 5, 6, 7]}, "0.bias": {0: [4, 5, 6, 7]},
                                 "2.weight": {1: [4, 5, 6, 7]}},
                        shapes={"0.weight": [8, 6], "0.bias": [8], "2.weight": [3, 8]})
    pruned = ep.apply_plan(copy.deepcopy(m), plan)
    x = torch.randn(256, 6)
    assert not torch.allclose(pruned(x), m(x), atol=1e-3)
    reconstruct(m, pruned, plan, [x], ridge=1e-9)
    assert torch.allclose(pruned(x), m(x), atol=1e-4)


def test_reconstruction_beats_plain_pruning_on_a_cnn():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(3, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), nn.Conv1d(16, 8, 3, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    x = torch.randn(200, 3, 32)
    bn_recalibrate(m, [x])
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.5), example_inputs=x[:1])
    before = (r.model(x) - m(x)).pow(2).mean()
    reconstruct(m, r.model, r.plan, [x])
    after = (r.model(x) - m(x)).pow(2).mean()
    assert after < 0.5 * before


def test_bn_recalibrate_matches_batch_statistics():
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    x = torch.randn(64, 3, 5, 5) * 3 + 1
    bn_recalibrate(m, [x[:32], x[32:]])
    feats = m[0](x)
    assert torch.allclose(m[1].running_mean, feats.mean((0, 2, 3)), atol=1e-4)
    assert not m.training
