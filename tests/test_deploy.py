"""int8 deployment: the float op list reproduces the model, the generated C (dense and sparse
kernels) equals the Python int8 reference bit for bit, the memory plan never overlaps live
buffers, and unsupported ops are refused by name."""
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.deploy import quantize_model
from edgeprune.deploy.cgen import compile_and_check, generate_c, plan_memory
from edgeprune.deploy.emulate import BOARDS, emulate_and_check, toolchain_missing
from edgeprune.errors import ConfigError
from edgeprune.sparse import global_magnitude
from edgeprune.testing import randomize_
from edgeprune.zoo import create_model

CORES = sorted(BOARDS)
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _model(name: str, **kw):
    torch.manual_seed(0)
    m = create_model(name, **kw)
    randomize_(m)
    return m.eval()


CASES = [("har_cnn", (6, 128)), ("lenet5", (1, 28, 28)), ("resnet8", (3, 32, 32)), ("ds_cnn", (6, 128)),
         ("lenet_300_100", (1, 28, 28))]


@needs_gcc
@pytest.mark.parametrize("name,shape", CASES)
def test_generated_c_equals_python_reference(name, shape, tmp_path):
    model = _model(name)
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(16, *shape, generator=g)]
    inputs = torch.randn(12, *shape, generator=g).numpy()
    for sparsity in (0.0, 0.85):
        if sparsity:
            global_magnitude(model, sparsity).apply_(model)
        qm = quantize_model(model, torch.randn(1, *shape), calib)
        out = tmp_path / f"s{sparsity}"
        gen = generate_c(qm, out, sparse=True)
        assert bool(gen.sparse_layers) == bool(sparsity)  # CSR only where it is smaller
        check = compile_and_check(qm, out, inputs)
        assert check.equal and check.mismatches == 0 and check.samples == 12
        if toolchain_missing() is None:  # the same program on an emulated Cortex-M, one core per case
            core = CORES[(CASES.index((name, shape)) * 2 + (sparsity > 0)) % len(CORES)]
            emu = emulate_and_check(qm, out, inputs[:4], core, len(gen.marks))
            assert emu.equal and emu.samples == 4 and emu.run.instructions > 0
        assert check.bss >= gen.arena_bytes and check.text > 0
        # the int8 model tracks the float one (dequantised outputs within a few output steps)
        with torch.no_grad():
            ref = model(torch.from_numpy(inputs[:4])).numpy()
        deq = np.stack([qm.dequantize_output(qm.run(qm.quantize_input(x))).reshape(-1) for x in inputs[:4]])
        scale = qm.q[qm.output_id].scale
        assert np.abs(deq - ref.reshape(4, -1)).max() < 12 * scale + 0.1 * np.abs(ref).max()


def test_memory_plan_never_overlaps_live_buffers():
    qm = quantize_model(_model("resnet8"), torch.randn(1, 3, 32, 32), [torch.randn(4, 3, 32, 32)])
    mem = plan_memory(qm)
    roots = sorted(set(mem.root.values()))
    live = {r: [k for k, op in enumerate(qm.ops) if mem.root[op.output] == r or
                any(mem.root[i] == r for i in op.inputs)] for r in roots}
    size = {r: int(np.prod(qm.shapes[r])) for r in roots}
    for i, a in enumerate(roots):
        for b in roots[i + 1:]:
            ka, kb = live[a] or [-1], live[b] or [-1]
            if a == qm.input_id:
                ka = [-1] + ka
            overlap_time = not (max(ka) < min(kb) or max(kb) < min(ka))
            if overlap_time:
                oa, ob = mem.offsets[a], mem.offsets[b]
                assert oa + size[a] <= ob or ob + size[b] <= oa
    assert mem.size < sum(size.values())  # buffers were shared


def test_unsupported_op_is_refused_by_name():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)
    with pytest.raises(ConfigError, match="sigmoid"):
        quantize_model(Odd(), torch.randn(1, 4), [torch.randn(2, 4)])


def test_qat_rounds_weights_and_activations_in_the_forward_and_leaves_float_weights():
    from edgeprune.deploy.qat import FakeQuant
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(32, 8)
    fq = FakeQuant(model)
    model.train()
    out = model(x)
    w = model[0].weight  # parametrized: the rounded weight
    per_row = w.detach().abs().amax(1, keepdim=True) / 127
    assert torch.allclose(w.detach() / per_row, torch.round(w.detach() / per_row), atol=1e-4)
    out.sum().backward()  # gradients pass straight through
    assert model[0].parametrizations.weight.original.grad is not None
    levels = torch.unique(model[2](torch.relu(model[0](x))).detach())
    assert len(levels) <= 256  # the output is on an int8 grid
    fq.remove()
    assert type(model[0].weight) is nn.Parameter and not hasattr(model[0], "parametrizations")
