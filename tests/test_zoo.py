"""Every zoo model prunes, verifies, exports to ONNX and scripts."""
import pytest
import torch

import edgeprune as ep
from edgeprune.testing import randomize_
from edgeprune.zoo import create_model, list_models
from edgeprune.zoo.registry import example_input


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_prunes_verifies_exports(name, tmp_path):
    model = randomize_(create_model(name).eval())
    x = example_input(name)
    r = ep.prune(model, ep.PruneConfig(keep_macs=0.5), example_inputs=x)
    assert r.verification.ok and r.after.macs <= 0.5 * r.before.macs
    ep.export_onnx(r.model, x, tmp_path / "m.onnx")  # raises if ONNX Runtime disagrees
    scripted = torch.jit.script(r.model)
    assert torch.allclose(scripted(x), r.model(x), atol=1e-5)


def test_pruned_model_trains():
    model = create_model("har_cnn")
    r = ep.prune(model.eval(), ep.PruneConfig(prune_ratio=0.5), example_inputs=example_input("har_cnn"))
    m = r.model.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.randn(8, 6, 128), torch.randint(0, 6, (8,))
    before = torch.nn.functional.cross_entropy(m(x), y)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    assert torch.nn.functional.cross_entropy(m(x), y) < before


def test_unknown_model_name():
    with pytest.raises(ep.ConfigError, match="unknown model"):
        create_model("resnet9000")
