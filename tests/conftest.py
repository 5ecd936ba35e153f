import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("EDGEPRUNE_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def quantized():
    """quantized(name, shape, n): a zoo model with random weights, its int8 model calibrated on
    16 random samples, and n random float inputs (the same draws in every test that uses it)."""
    def make(name, shape, n):
        from edgeprune.deploy import quantize_model
        from edgeprune.testing import randomize_
        from edgeprune.zoo import create_model
        torch.manual_seed(0)
        m = create_model(name)
        randomize_(m)
        m.eval()
        g = torch.Generator().manual_seed(1)
        qm = quantize_model(m, torch.randn(1, *shape), [torch.randn(16, *shape, generator=g)])
        return m, qm, torch.randn(n, *shape, generator=g).numpy()
    return make
