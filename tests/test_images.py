"""Image loaders accept torchvision's on-disk formats and local .npz copies (small generated
files: nothing is downloaded)."""
import pickle
import struct

import numpy as np
import pytest

from edgeprune.data import load_image_dataset
from edgeprune.errors import ConfigError


def _idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _fake_mnist(root, folder):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_mnist_format(tmp_path, name, folder):
    pytest.importorskip("torchvision")
    _fake_mnist(tmp_path, folder)
    d = load_image_dataset(name, tmp_path)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.y_train.dtype.is_floating_point is False


def test_torchvision_cifar_format(tmp_path, monkeypatch):
    tv = pytest.importorskip("torchvision")
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / f, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    monkeypatch.setattr(tv.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv.datasets.cifar, "check_integrity", lambda *a, **k: True)  # md5 of real files
    d = load_image_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)


def test_npz_copy(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", x_train=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
             y_train=np.arange(6, dtype=np.uint8), x_test=rng.integers(0, 255, (3, 28, 28), dtype=np.uint8),
             y_test=np.arange(3, dtype=np.uint8))
    d = load_image_dataset("mnist", npz=tmp_path / "m.npz")
    assert d.x_train.shape == (6, 1, 28, 28) and abs(float(d.x_train.mean())) < 3


def test_cifar_jpeg_npz(tmp_path):
    from io import BytesIO

    from PIL import Image
    blobs, offs = [], [0]
    for i in range(3):
        b = BytesIO()
        Image.fromarray(np.full((32, 32, 3), i * 50, np.uint8)).save(b, format="JPEG")
        blobs.append(np.frombuffer(b.getvalue(), np.uint8))
        offs.append(offs[-1] + len(blobs[-1]))
    jpeg, offsets = np.concatenate(blobs), np.array(offs)
    np.savez(tmp_path / "c.npz", train_jpeg=jpeg, train_offsets=offsets, train_labels=np.arange(3, dtype=np.int8),
             test_jpeg=jpeg, test_offsets=offsets, test_labels=np.arange(3, dtype=np.int8))
    d = load_image_dataset("cifar10", npz=tmp_path / "c.npz")
    assert d.x_train.shape == (3, 3, 32, 32)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(ConfigError, match="download=True"):
        load_image_dataset("mnist", tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_image_dataset("imagenet", tmp_path)
