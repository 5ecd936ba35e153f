"""Random architectures, pruned at random ratios with random criteria, must always verify."""
import os
import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeprune as ep
from edgeprune.testing import randomize_
from edgeprune.testing.random_net import RandomNet

block = st.one_of(
    st.tuples(st.just("conv"), st.integers(2, 12), st.sampled_from([1, 3]),
              st.sampled_from(["plain", "depthwise", "grouped"])),
    st.tuples(st.just("norm"), st.sampled_from(["bn", "gn", "in"])),
    st.tuples(st.just("act"), st.sampled_from(["relu", "gelu", "hardswish"])),
    st.tuples(st.just("res")), st.tuples(st.just("cat"), st.integers(1, 6)),
    st.tuples(st.just("chunk")), st.tuples(st.just("se")),
)


# the same 80 examples on every CI run; EDGEPRUNE_FUZZ=N explores N fresh ones
FUZZ = int(os.environ.get("EDGEPRUNE_FUZZ", "0"))


@settings(max_examples=FUZZ or 80, derandomize=not FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(block, min_size=1, max_size=6), head=st.sampled_from(["pool", "flatten"]), ln=st.booleans(),
       ratio=st.floats(0.1, 0.8), criterion=st.sampled_from(["l1", "l2", "random", "bn_scale"]),
       scope=st.sampled_from(["local", "global"]), seed=st.integers(0, 100))
def test_random_networks_verify(spec, head, ln, ratio, criterion, scope, seed):
    model = randomize_(RandomNet(spec, head, ln).eval(), seed)
    x = torch.randn(2, 3, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ep.prune(model, ep.PruneConfig(prune_ratio=ratio, criterion=criterion, scope=scope, seed=seed),
                     example_inputs=x)
    assert r.verification.ok, r.verification
    assert r.model(x).shape == (2, 3)
    assert r.after.params < r.before.params
