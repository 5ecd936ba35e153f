"""A quick subset of the torchvision sweep (the full one is `python -m benchmarks.sweep`)."""
import warnings

import pytest
import torch

import edgeprune as ep
from edgeprune.testing import randomize_

tv = pytest.importorskip("torchvision")


def _small_vit():
    return tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64,
                                       mlp_dim=128, num_classes=10), 32


def _small_swin():
    return tv.models.SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                                     window_size=[4, 4], num_classes=10), 64


MODELS = {
    "resnet18": lambda: (tv.models.resnet18(num_classes=10), 64),
    "mobilenet_v2": lambda: (tv.models.mobilenet_v2(num_classes=10), 64),
    "shufflenet_v2_x0_5": lambda: (tv.models.shufflenet_v2_x0_5(num_classes=10), 64),
    "densenet121": lambda: (tv.models.densenet121(num_classes=10), 64),
    "efficientnet_b0": lambda: (tv.models.efficientnet_b0(num_classes=10), 64),
    "convnext_tiny": lambda: (tv.models.convnext_tiny(num_classes=10), 64),
    "small_vit": _small_vit,
    "small_swin": _small_swin,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_model(name, tmp_path):
    model, size = MODELS[name]()
    model = randomize_(model.eval())
    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=x)
    assert r.verification.ok and r.model(x).shape == (1, 10)
    assert r.after.macs < (0.8 if "swin" in name else 0.45) * r.before.macs
    ep.export_onnx(r.model, x, tmp_path / "m.onnx")


def test_vit_heads_and_hidden_dim_follow():
    model, _ = _small_vit()
    model = randomize_(model.eval())
    r = ep.prune(model, ep.PruneConfig(prune_ratio=0.5), example_inputs=torch.randn(1, 3, 32, 32))
    att = r.model.encoder.layers[0].self_attention
    assert att.num_heads == 2 and att.embed_dim == 32 and r.model.hidden_dim == 32
