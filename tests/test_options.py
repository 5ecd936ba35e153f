"""PruneConfig options behave as documented."""
import pytest
import torch

import edgeprune as ep
from edgeprune.zoo import create_model


def _har():
    return create_model("har_cnn").eval(), torch.randn(1, 6, 128)


def _widths(model):
    return [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv1d)]


def test_local_ratio_removes_that_fraction_everywhere():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.25), example_inputs=x)
    assert _widths(r.model) == [48, 96, 96, 192]


def test_round_to_keeps_multiples():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.3, round_to=16), example_inputs=x)
    assert all(w % 16 == 0 for w in _widths(r.model))


def test_min_channels():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.99, min_channels=8), example_inputs=x)
    assert _widths(r.model) == [8, 8, 8, 8]


def test_ignore_leaves_layer_alone():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.5, ignore=("features.4",)), example_inputs=x)
    assert _widths(r.model)[1] == 128 and _widths(r.model)[0] == 32


def test_layer_ratios_by_name_and_regex():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.0, layer_ratios={"features.0": 0.5, "re:features\\.(8|12)": 0.25}),
                 example_inputs=x)
    assert _widths(r.model) == [32, 128, 96, 192]


def test_keep_macs_target_is_met():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(keep_macs=0.25), example_inputs=x)
    frac = r.after.macs / r.before.macs
    assert 0.2 < frac <= 0.25


def test_keep_params_target_is_met():
    m, x = _har()
    r = ep.prune(m, ep.PruneConfig(keep_params=0.5, scope="global"), example_inputs=x)
    assert 0.45 < r.after.params / r.before.params <= 0.5


def test_global_scope_prunes_unevenly():
    m, x = _har()
    with torch.no_grad():  # 100 filters of layer 3 (and their batch-norm scales) carry ~nothing
        m.features[8].weight[:100] *= 1e-3
        m.features[9].weight[:100] *= 1e-3
        m.features[12].weight[:, :100] *= 1e-3
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.3, scope="global", criterion="l1"), example_inputs=x)
    w = _widths(r.model)
    assert w[2] <= 28  # the weak filters went first, far more than 30 % of this layer
    assert abs(sum(w) - 0.7 * 576) <= 2


@pytest.mark.parametrize("bad", [dict(prune_ratio=1.0), dict(keep_macs=0), dict(keep_macs=0.5, keep_params=0.5),
                                 dict(scope="everywhere"), dict(criterion="nope"), dict(round_to=0)])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ep.ConfigError):
        ep.PruneConfig(**bad)


def test_unknown_ignore_name_is_an_error():
    m, x = _har()
    with pytest.raises(ep.ConfigError, match="does not have"):
        ep.prune(m, ep.PruneConfig(ignore=("features.99",)), example_inputs=x)


def test_unknown_op_error_names_it_and_the_ways_out():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.special.expit(self.a(x)))  # an op edgeprune has no rule for

    with pytest.raises(ep.UnsupportedLayerError) as info:
        ep.prune(Odd().eval(), ep.PruneConfig(), example_inputs=torch.randn(2, 4))
    msg = str(info.value)
    assert "special_expit" in msg and "register" in msg and "strict=False" in msg
    r = ep.prune(Odd().eval(), ep.PruneConfig(strict=False), example_inputs=torch.randn(2, 4))
    assert r.model.a.out_features == 8 and r.verification.ok


def test_register_op_makes_it_prunable():
    from edgeprune.rules.ops import _broadcast

    class Odd2(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.special.erfc(self.a(x)))

    with pytest.raises(ep.UnsupportedLayerError):
        ep.prune(Odd2().eval(), ep.PruneConfig(), example_inputs=torch.randn(2, 4))
    ep.register_op("special_erfc")(_broadcast)
    r = ep.prune(Odd2().eval(), ep.PruneConfig(), example_inputs=torch.randn(2, 4))
    assert r.model.a.out_features == 4 and r.verification.ok


def test_outputs_shrink_only_when_asked():
    from edgeprune.testing.toys import TOYS
    model, x = TOYS["linear"]()
    kept = ep.prune(model.eval(), ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert kept.model(x).shape == (4, 3)
    shrunk = ep.prune(model.eval(), ep.PruneConfig(prune_ratio=0.5, prune_outputs=True), example_inputs=x)
    assert shrunk.model(x).shape == (4, 2) and shrunk.verification.ok


def test_training_mode_is_kept():
    m, x = _har()
    m.train()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert m.training and r.model.training and r.verification.ok


def test_layer_ratio_names_any_layer_of_a_coupled_group():
    m = create_model("resnet1d").eval()
    r = ep.prune(m, ep.PruneConfig(prune_ratio=0.0, layer_ratios={"layers.3.conv2": 0.5}),
                 example_inputs=torch.randn(1, 6, 128))
    # layers.3.conv2 shares its output channels with the stage's other convs and shortcut
    assert r.model.layers[3].conv2.out_channels == 32 and r.model.layers[2].shortcut[0].out_channels == 32
    assert r.model.layers[3].conv1.out_channels == 64
