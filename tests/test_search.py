"""Width search (cost model, AMC, ABCPruner, DSA) and the Taylor reallocation to a target rate:
each test checks the behaviour that defines the method, on small models and synthetic data."""
import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.search import ChannelSpace, scale_to_budget
from edgeprune.search.abc import ABCConfig, ABCPruner
from edgeprune.search.amc import AMC, AMCConfig
from edgeprune.search.dsa import DSA, DSAConfig, _solve_log_beta1
from edgeprune.search.gates import ChannelGates
from edgeprune.zoo import create_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(3, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Conv1d(16, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Conv1d(32, 24, 3, padding=1), nn.BatchNorm1d(24), nn.ReLU(),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(24, 4)).eval()


X = torch.randn(1, 3, 20)


@pytest.mark.parametrize("name,shape", [("resnet8", (1, 3, 32, 32)), ("har_cnn", (1, 6, 128))])
def test_cost_model_equals_counted_macs_and_params(name, shape):
    space = ChannelSpace(create_model(name).eval(), torch.randn(*shape))
    rng = np.random.default_rng(0)
    for _ in range(4):
        keep = rng.uniform(0.05, 1, len(space)).tolist()
        frac = space.fractions(keep)
        assert space.macs(frac) / space.macs.c0 == pytest.approx(space.exact(keep, "macs"), rel=1e-9)
        assert space.params(frac) / space.params.c0 == pytest.approx(space.exact(keep, "params"), rel=1e-9)
    assert space.finalize([0.5] * len(space)).verification.ok


def test_scale_to_budget_meets_the_target_and_keeps_fitting_vectors():
    space = ChannelSpace(_net(), X)
    keep = scale_to_budget(space, [1.0] * len(space), "macs", 0.3)
    assert 0.28 < space.macs(space.fractions(keep)) / space.macs.c0 <= 0.3
    small = [0.2] * len(space)
    assert scale_to_budget(space, small, "macs", 0.9) == small


def test_gates_zero_channels_exactly_like_removal():
    model = _net()
    space = ChannelSpace(model, X)
    removed = {g.index: [0, 2] for g in space.groups}
    pruned = space.finalize(removed=removed).model
    with ChannelGates(model, space) as gates:
        for gi, g in enumerate(space.groups):
            m = torch.ones(len(g))
            m[[0, 2]] = 0
            gates.set(gi, m)
        masked = model(X)
    torch.testing.assert_close(pruned(X), masked, rtol=1e-5, atol=1e-6)


def test_amc_action_wall_keeps_every_episode_within_budget_and_agent_learns():
    space = ChannelSpace(_net(), X)
    # a synthetic "accuracy": rewards keeping the first group wide, the rest are free to shrink
    def score(model):
        return model[0].out_channels / 16.0
    cfg = AMCConfig(target=0.3, episodes=200, warmup=40, hidden=64, batch=32, seed=0, progress=False)
    result = AMC(space, score, cfg).search()
    costs = [h["cost"] for h in result.history]
    assert max(costs) <= 0.3 + 1e-9  # the wall: never over budget
    early = np.mean([h["reward"] for h in result.history[:40]])
    late = np.mean([h["reward"] for h in result.history[-30:]])
    assert late > early + 0.15, (early, late)  # the agent learned to keep group 0
    assert result.keep[0] > 0.8


def test_amc_accuracy_guaranteed_reward_is_minus_error_log_flops():
    space = ChannelSpace(_net(), X)
    amc = AMC(space, lambda m: 0.9, AMCConfig(reward="error_log_flops", episodes=3, warmup=2, progress=False))
    assert amc._reward(0.9, 0.5) == pytest.approx(-0.1 * np.log(0.5 * space.base_macs))
    with pytest.raises(ConfigError, match="out of reach"):
        AMC(space, lambda m: 0.9, AMCConfig(target=0.01, lbound=0.5, episodes=3, warmup=1))


def test_abc_improves_on_random_sources_and_respects_budget():
    space = ChannelSpace(_net(), X, criterion="random")
    def fitness(model):  # prefers a wide middle layer
        return model[3].out_channels / 32.0
    abc = ABCPruner(space, fitness, ABCConfig(target=0.4, max_cycle=6, seed=0, progress=False))
    result = abc.search()
    initial = [h["fitness"] for h in result.history[:10]]
    assert result.fitness >= max(initial) and result.fitness > np.mean(initial)
    assert all(h["cost"] <= 0.4 + 1e-6 for h in result.history)
    assert result.fitness == max(h["fitness"] for h in result.history)


def test_dsa_keep_probabilities_match_alpha_with_implicit_gradient():
    logw = torch.randn(40)
    for alpha in (0.2, 0.5, 0.9):
        u = _solve_log_beta1(logw, alpha, 5.0)
        assert float(torch.sigmoid(5.0 * (logw - u)).mean()) == pytest.approx(alpha, abs=1e-6)
    model = _net()
    space = ChannelSpace(model, X)
    dsa = DSA(model, space, DSAConfig(target=0.5))
    with torch.no_grad():
        dsa.alpha.copy_(torch.tensor([0.3, 0.6, 0.8]))
    probs = dsa.probabilities()
    for gi, p in enumerate(probs):
        assert p.mean().item() == pytest.approx(dsa.alpha[gi].item(), abs=1e-5)
        (grad,) = torch.autograd.grad(p.mean(), dsa.alpha)
        assert float(grad[gi]) == pytest.approx(1.0, abs=1e-3)  # d mean(p) / d alpha = 1
    dsa.finalize()


def test_dsa_training_meets_budget_with_uneven_allocation():
    torch.manual_seed(0)
    model = _net().train()
    x = torch.randn(256, 3, 20)
    y = (x[:, 0].mean(1) > 0).long() + 2 * (x[:, 1].mean(1) > 0).long()
    space = ChannelSpace(model, X)
    dsa = DSA(model, space, DSAConfig(target=0.3), total_steps=40)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for step in range(1, 41):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        dsa.step(model, step)
    assert dsa.budget(40) == pytest.approx(0.3)
    result = dsa.finalize()
    assert result.verification.ok
    assert result.after.macs / result.before.macs <= 0.3 + 1e-9
    assert len({round(a, 3) for a in dsa.alpha.tolist()}) > 1  # not a uniform ratio


def test_taylor_reallocation_hits_the_rate_in_one_run_and_can_revive_units():
    from edgeprune.methods import TaylorReallocation, TaylorReallocationConfig
    torch.manual_seed(0)
    model = _net().train()
    x = torch.randn(256, 3, 20)
    y = (x[:, 0].mean(1) > 0).long() + 2 * (x[:, 2].mean(1) > 0).long()
    total = 60
    tr = TaylorReallocation(model, X, total, TaylorReallocationConfig(target=0.3, interval=5, start=0.1, end=0.6))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    step = 0
    while not tr.compacted:
        step += 1
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tr.step(model, step)
    assert step == int(0.6 * total)  # compacted inside the run, no separate stage
    assert abs(tr.achieved - 0.3) <= tr.unit_cost() + 1e-9
    assert tr.result.verification.ok
    widths = [w / s for w, s in zip(tr.log.widths[-1], tr.space.sizes)]
    assert max(widths) - min(widths) > 0.05  # reallocated: not one ratio everywhere
    assert tr.log.budgets == sorted(tr.log.budgets, reverse=True)
    # revival: a masked unit whose measured importance rises above the kept ones comes back
    tr2 = TaylorReallocation(_net(), X, 100, TaylorReallocationConfig(target=0.5, interval=1, momentum=0.0))
    tr2.acc = [torch.arange(s, dtype=torch.float) + 1 for s in tr2.space.sizes]
    tr2.batches = 1
    tr2._reallocate(60)
    gone = int(torch.nonzero(~tr2.mask[0])[0])
    tr2.acc = [torch.arange(s, dtype=torch.float) + 1 for s in tr2.space.sizes]
    tr2.acc[0][gone] = 1e6
    tr2.batches = 1
    tr2._reallocate(61)
    assert tr2.mask[0][gone] and tr2.log.revived >= 1


def test_search_prune_runs_each_method_on_hapt_quickly():
    from edgeprune.search.run import SearchOptions, search_prune
    from edgeprune.training import TrainConfig
    from edgeprune.workflow import load_task
    task = load_task("hapt")
    model = create_model("har_cnn", num_classes=task.num_classes)
    opts = SearchOptions(episodes=6, warmup=3, cycles=1, fitness_batches=2, search_epochs=1, calibration=128,
                         val_samples=256, progress=False)
    for method in ("amc", "abc", "dsa"):
        result, acc, info = search_prune(model, task, method, 0.4, "macs", TrainConfig(epochs=0, progress=False), opts)
        assert result.after.macs / result.before.macs <= 0.4 + 1e-9, method
        assert result.verification.ok and 0 <= acc["searched"] <= 1
