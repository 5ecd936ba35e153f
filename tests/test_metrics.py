"""Counts checked against hand computation."""
import torch
from torch import nn

import edgeprune as ep
from edgeprune.metrics import count_macs, count_params
from edgeprune.metrics.measure import peak_activation_bytes


def test_conv_and_linear_macs():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    x = torch.randn(1, 3, 4, 4)
    assert count_macs(m, x) == 8 * 4 * 4 * 3 * 9 + 128 * 5
    assert count_params(m) == 8 * 27 + 8 + 128 * 5 + 5


def test_depthwise_macs():
    m = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(m, torch.randn(1, 8, 5, 5)) == 8 * 25 * 9


def test_attention_and_matmul_macs():
    q = torch.randn(1, 4, 6)

    class MM(nn.Module):
        def forward(self, a):
            return a @ a.transpose(1, 2)
    assert count_macs(MM(), q) == 4 * 4 * 6


def test_peak_activation_memory_of_a_chain():
    m = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 10))
    g = ep.trace(m, torch.randn(1, 10))
    # largest moment: relu reads the 100-wide value and writes another: 2 x 100 floats (+ input gone)
    assert peak_activation_bytes(g) == 4 * (100 + 100)


def test_measure_reports_latency():
    s = ep.measure(nn.Linear(4, 4), torch.randn(1, 4), latency=True, onnx=True, repeats=5)
    assert s.latency_ms > 0 and s.onnx_latency_ms > 0 and s.params == 20 and s.int8_bytes == 16 + 16
