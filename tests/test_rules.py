"""Every supported layer type and coupling pattern: pruned, verified, attributes updated,
weights reloadable into a fresh instance through the plan."""
import warnings

import pytest
import torch

import edgeprune as ep
from edgeprune.testing import randomize_
from edgeprune.testing.toys import TOYS


def _load(name):
    model, x = TOYS[name]()
    return randomize_(model.eval()), x


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_is_pruned_and_verified(name):
    model, x = _load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert result.verification.ok, result.verification
    assert result.verification.output_scale > 1e-6
    assert result.after.params < result.before.params, "nothing was pruned"
    # the pruned model is an ordinary module: replaying the plan on a fresh instance gives
    # the same shapes, and its state_dict loads
    fresh, _ = TOYS[name]()
    ep.apply_plan(fresh, result.plan)
    fresh.load_state_dict(result.model.state_dict())
    for m in result.model.modules():  # attributes follow the tensors
        if isinstance(m, torch.nn.modules.conv._ConvNd) and not isinstance(m, torch.nn.modules.conv._ConvTransposeNd):
            assert m.weight.shape[0] == m.out_channels and m.weight.shape[1] * m.groups == m.in_channels
        if isinstance(m, torch.nn.Linear):
            assert tuple(m.weight.shape) == (m.out_features, m.in_features)
        if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.weight is not None:
            assert m.weight.shape[0] == m.num_features
        if isinstance(m, torch.nn.MultiheadAttention):
            assert m.embed_dim == m.num_heads * m.head_dim == m.in_proj_weight.shape[1]
        if isinstance(m, torch.nn.GroupNorm):
            assert m.num_channels == m.weight.shape[0] and m.num_channels % m.num_groups == 0


def test_outputs_keep_their_size():
    model, x = _load("multi_input_output")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    out = result.model(*x)
    assert out["first"].shape == (2, 2) and out["second"][0].shape == (2, 3)


def test_depthwise_drops_whole_groups():
    model, x = _load("depthwise")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    dw = result.model[2]
    assert dw.groups == dw.in_channels == dw.out_channels == 4


def test_grouped_conv_keeps_group_count():
    model, x = _load("grouped")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    g = result.model[2]
    assert g.groups == 4 and g.in_channels % 4 == 0 and g.out_channels % 4 == 0 and g.out_channels < 12


def test_attention_removes_whole_heads():
    model, x = _load("multihead_attention")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    att = result.model.att
    assert att.num_heads == 2 and att.head_dim == 4 and att.embed_dim == 8


def test_lstm_hidden_units_shrink():
    model, x = _load("lstm")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert result.model.rnn.hidden_size == 6
    assert result.model.rnn.weight_hh_l1.shape == (24, 6)


def test_flatten_expands_channels_into_positions():
    model, x = _load("concat_flatten")
    result = ep.prune(model, ep.PruneConfig(prune_ratio=0.4), example_inputs=x)
    c, head = result.model.c, result.model.head
    assert head.in_features == c.out_channels * 16


def test_runtime_trace_fallback_is_reported():
    model, x = _load("data_dependent")
    with pytest.warns(UserWarning, match="runtime trace"):
        result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert result.tracer == "runtime" and result.verification.ok


def test_fx_is_used_when_possible():
    model, x = _load("residual")
    assert ep.trace(model, x).tracer == "fx"


def test_hard_coded_widths_are_found_and_kept():
    """The reshape takes its width from another tensor: the first plan breaks it, the op-by-op
    check finds the op, and its channels are kept; the MLP is still pruned."""
    model, x = _load("functional_attention")
    with pytest.warns(UserWarning, match="could not change width"):
        result = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert result.verification.ok
    assert result.model.mlp[0].out_features == 16 and result.model.qkv.out_features == 48
    assert result.plan.meta["kept_by_checks"]
