"""Verification must catch wrong models, and only pass right ones."""
import copy

import pytest
import torch

import edgeprune as ep
from edgeprune.testing import randomize_
from edgeprune.testing.toys import TOYS


def _pruned(name="residual", ratio=0.5):
    model, x = TOYS[name]()
    randomize_(model.eval())
    return model, x, ep.prune(model, ep.PruneConfig(prune_ratio=ratio), example_inputs=x)


def test_verification_passes_on_a_correct_prune():
    model, x, r = _pruned()
    report = ep.verify(model, r.model, r.plan, x)
    assert report.ok and report.max_abs_error < 1e-10


def test_changed_weight_is_caught():
    model, x, r = _pruned()
    bad = copy.deepcopy(r.model)
    with torch.no_grad():
        bad.a[0].weight[0, 0, 0, 0] += 0.1
    with pytest.raises(ep.VerificationError):
        ep.verify(model, bad, r.plan, x)


def test_misaligned_channels_are_caught():
    """Keep the right number of channels, but the wrong ones in one consumer."""
    model, x, r = _pruned("conv2d")
    wrong = copy.deepcopy(model)
    plan = ep.PrunePlan.from_dict(r.plan.to_dict())
    removed = plan.removed["3.weight"][1]
    plan.removed["3.weight"][1] = [(i + 1) % 8 for i in removed]  # shifted input columns
    with pytest.raises(ep.VerificationError):
        ep.apply_plan(wrong, plan)
        ep.verify(model, wrong, plan, x)


def test_partial_unit_in_plan_is_rejected():
    model, x, r = _pruned("residual")
    plan = ep.PrunePlan.from_dict(r.plan.to_dict())
    # drop one coupled layer's entry: the residual branch no longer matches the stem
    plan.removed.pop("b.weight")
    plan.shapes.pop("b.weight")
    with pytest.raises(ep.VerificationError):
        ep.verify(model, r.model, plan, x)


def test_masking_happens_at_consumers_not_producers():
    """Zeroing the removed filters is not the reference: a batch norm turns zeros into its bias.
    The pruned model must equal the consumer-masked original, which differs from the
    producer-zeroed one."""
    model, x, r = _pruned("conv2d")
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for i in r.plan.removed["0.weight"][0]:
            zeroed[0].weight[i] = 0
            zeroed[0].bias[i] = 0
    assert not torch.allclose(zeroed(x), r.model(x), atol=1e-5)
    assert ep.verify(model, r.model, r.plan, x).ok


def test_report_flags_weak_checks():
    model, x = TOYS["linear"]()
    with torch.no_grad():
        model[4].weight.zero_()
        model[4].bias.zero_()
    r = ep.prune(model.eval(), ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert "weak" in r.verification.message
