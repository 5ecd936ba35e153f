"""Robust aggregation: each rule's defining arithmetic on hand-made updates (worked out from
the papers' formulas), sample counts checked and capped, and a federation with attackers that
ruins plain FedAvg but not the median."""
import numpy as np
import pytest

pytest.importorskip("flwr")

from edgeprune.errors import ConfigError  # noqa: E402
from edgeprune.federated.experiment import FedConfig, hapt_devices  # noqa: E402
from edgeprune.federated.robust import RobustConfig, aggregate, checked_counts  # noqa: E402
from edgeprune.federated.simulation import simulate  # noqa: E402
from edgeprune.federated.strategy import EdgeStrategy  # noqa: E402
from edgeprune.zoo import create_model  # noqa: E402


def _u(*rows):
    """Updates of two tensors each: a (2,) vector and a scalar-like (1,) one."""
    return [[np.array(r[:2], np.float32), np.array(r[2:], np.float32)] for r in rows]


ZERO = [np.zeros(2, np.float32), np.zeros(1, np.float32)]


def test_median_and_trimmed_mean_per_coordinate():
    ups = _u([1, 5, 0], [2, -1, 3], [100, 2, 4], [3, 3, 1], [4, 0, 50])
    med = aggregate(ZERO, ups, [1] * 5, RobustConfig("median"))
    assert np.allclose(med[0], [3, 2]) and np.allclose(med[1], [3])  # a mean would give [22, 1.8], [11.6]
    trim = aggregate(ZERO, ups, [1] * 5, RobustConfig("trimmed", trim=0.2))  # one value cut at each end
    assert np.allclose(trim[0], [(2 + 3 + 4) / 3, (0 + 2 + 3) / 3]) and np.allclose(trim[1], [(1 + 3 + 4) / 3])


def test_krum_picks_the_update_closest_to_its_neighbours_multikrum_averages_the_best():
    # scalar updates 0, 0.1, -0.1, 0.3 and an outlier; f = 1, so n - f - 2 = 2 nearest count.
    # squared distances: scores 0: .01+.01 = .02, 0.1: .01+.04, -0.1: .01+.04, 0.3: .04+.09, 100: huge
    ups = [[np.array([v], np.float32)] for v in (0.1, 0.0, -0.1, 0.3, 100.0)]
    cur = [np.zeros(1, np.float32)]
    assert np.allclose(aggregate(cur, ups, [1] * 5, RobustConfig("krum", malicious=1))[0], [0.0])
    multi = aggregate(cur, ups, [1, 1, 1, 1, 1], RobustConfig("multikrum", malicious=1))  # the 4 best, averaged
    assert np.allclose(multi[0], [(0.1 + 0.0 - 0.1 + 0.3) / 4])


def test_step_counters_neither_steer_krum_nor_get_averaged_by_it():
    # weights 0.1, 0.0, -0.1, 0.3, 100 as above, beside a num_batches_tracked-like counter that
    # grows with each device's data (10, 40, 90, 12, 11). Counted in the distances, it would make
    # Krum pick the device with counter 12 or 11 (weights 0.3 or 100); left out, Krum picks the
    # weight 0.0 and the counter is the median, 12.
    ups = [[np.array([v], np.float32), np.array([c], np.float32)]
           for v, c in ((0.1, 10), (0.0, 40), (-0.1, 90), (0.3, 12), (100.0, 11))]
    cur = [np.zeros(1, np.float32), np.zeros(1, np.float32)]
    with_counter = aggregate(cur, ups, [1] * 5, RobustConfig("krum", malicious=1))
    assert not np.allclose(with_counter[0], [0.0])  # the trap the counters argument avoids
    out = aggregate(cur, ups, [1] * 5, RobustConfig("krum", malicious=1), counters=(1,))
    assert np.allclose(out[0], [0.0]) and np.allclose(out[1], [12.0])
    mean = aggregate(cur, ups, [1] * 5, RobustConfig("mean"), counters=(1,))  # FedAvg unchanged
    assert np.allclose(mean[1], [(10 + 40 + 90 + 12 + 11) / 5])


def test_bulyan_ignores_two_outliers_among_seven():
    ups = [[np.array([v], np.float32)] for v in (0.0, 0.1, -0.1, 0.2, -0.2, 1e6, -1e6)]
    out = aggregate([np.zeros(1, np.float32)], ups, [1] * 7, RobustConfig("bulyan", malicious=1))[0]
    assert abs(float(out[0])) <= 0.2


def test_clip_bounds_each_update_to_the_median_norm_then_averages_by_samples():
    cur = [np.array([1.0, 1.0], np.float32)]
    ups = [[cur[0] + d] for d in (np.array([1.0, 0]), np.array([0, 2.0]), np.array([10.0, 0]))]
    out = aggregate(cur, ups, [1, 1, 2], RobustConfig("clip"))[0]
    # norms 1, 2, 10 -> median 2; the third is scaled to [2, 0]; weights 1:1:2
    assert np.allclose(out, cur[0] + np.array([(1 + 0 + 2 * 2) / 4, 2 / 4]))


def test_mean_is_fedavg_weighted_by_samples():
    out = aggregate(ZERO, _u([1, 0, 0], [4, 3, 6]), [3, 1], RobustConfig("mean"))
    assert np.allclose(out[0], [(3 * 1 + 4) / 4, 3 / 4]) and np.allclose(out[1], [6 / 4])


def test_sample_counts_refused_or_capped_at_a_multiple_of_the_median():
    counts, notes = checked_counts([100, 120, 10 ** 6, 0, True, 110, 3.5, 10 ** 9], 4.0)
    # valid: 100, 120, 1e6, 110 -> median 115 -> cap 460; 0, True, 3.5 and 1e9 (> MAX_COUNT) refused
    assert counts == [100, 120, 460, 0, 0, 110, 0, 0]
    assert sorted(i for i, _ in notes) == [2, 3, 4, 6, 7]
    trusted, _ = checked_counts([100, 10 ** 9], 0.0)  # cap 0: plain FedAvg trusts every count
    assert trusted == [100, 10 ** 9]
    with pytest.raises(ConfigError):
        RobustConfig("average")


def _run(faults, rule, cap=4.0, n=8, rounds=2):
    cfg = FedConfig(rounds=rounds, faults=faults)
    clients, test, kwargs = hapt_devices(cfg)
    clients = clients[:n]
    strategy = EdgeStrategy("har_cnn", kwargs, create_model("har_cnn", **kwargs), clients[0].x[:1], test, "fedavg",
                            min_fit_clients=2, min_available_clients=n, robust=RobustConfig(rule, cap))
    return simulate(clients, strategy, rounds)


def test_huge_weights_from_two_of_eight_devices_ruin_fedavg_but_not_the_median():
    faults = ((0, "huge"), (3, "huge"))
    plain, robust = _run(faults, "mean"), _run(faults, "median")
    assert plain.rounds[-1].accuracy < 0.25  # chance is 1/6: the model is destroyed
    assert robust.rounds[-1].accuracy > 0.6


def test_an_absurd_sample_count_is_refused_and_logged():
    h = _run(((1, "inflate"),), "mean", rounds=1)
    assert h.rounds[0].accepted == 7 and h.rounds[0].rejected == 1  # 1e9 samples: more than MAX_COUNT
    assert any("sample count 1000000000" in r for r in h.rejected)
