"""MNIST, Fashion-MNIST and CIFAR-10, from torchvision (how users get them) or from a local
.npz copy (how the offline benchmarks here get them). Both give the same tensors."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeprune.errors import ConfigError

_STATS = {"mnist": ((0.1307,), (0.3081,)), "fashion_mnist": ((0.2860,), (0.3530,)),
          "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
_TV = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


@dataclass
class ImageData:
    x_train: torch.Tensor  # (N, C, H, W) float32, normalised
    y_train: torch.Tensor  # int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str

    @property
    def num_classes(self) -> int:
        return 10


def _normalise(name: str, x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> normalised float (N, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    mean, std = (torch.tensor(s).view(1, -1, 1, 1) for s in _STATS[name])
    return ((t - mean) / std).contiguous()


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(offsets) - 1, 32, 32, 3), np.uint8)
    for i in range(len(offsets) - 1):
        out[i] = np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
    return out


def _from_npz(name: str, path: Path):
    with np.load(path, allow_pickle=False) as d:
        if name == "cifar10":
            return (_decode_jpegs(d["train_jpeg"], d["train_offsets"]), d["train_labels"],
                    _decode_jpegs(d["test_jpeg"], d["test_offsets"]), d["test_labels"])
        return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


def _from_torchvision(name: str, root: Path, download: bool):
    try:
        import torchvision.datasets as tvd
    except ImportError as exc:
        raise ConfigError(f"loading {name} needs torchvision (pip install torchvision) or a local .npz "
                          "copy (npz=PATH)") from exc
    cls = getattr(tvd, _TV[name])
    try:
        tr, te = cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise ConfigError(f"{name} is not under {root}: {exc}\nhelp: pass download=True (CLI: --download) "
                          "to fetch it with torchvision, or npz=PATH for a local copy") from exc
    as_np = lambda d: d.numpy() if isinstance(d, torch.Tensor) else np.asarray(d)  # noqa: E731
    return as_np(tr.data), as_np(tr.targets), as_np(te.data), as_np(te.targets)


def load_image_dataset(name: str, root: str | Path = "~/.cache/edgeprune", *, npz: str | Path | None = None,
                       download: bool = False, limit: int | None = None) -> ImageData:
    """`name` in mnist, fashion_mnist, cifar10. With `npz`, read that local copy; otherwise
    torchvision's dataset under `root` (downloaded only when `download=True`)."""
    if name not in _STATS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(_STATS)}")
    if npz is not None:
        xtr, ytr, xte, yte = _from_npz(name, Path(npz))
    else:
        xtr, ytr, xte, yte = _from_torchvision(name, Path(root).expanduser(), download)
    if limit:  # a fixed random subset: some copies are sorted by class
        rng = np.random.default_rng(0)
        tr, te = rng.permutation(len(xtr))[:limit], rng.permutation(len(xte))[:limit]
        xtr, ytr, xte, yte = xtr[tr], np.asarray(ytr)[tr], xte[te], np.asarray(yte)[te]
    to_y = lambda y: torch.from_numpy(np.asarray(y).astype(np.int64))  # noqa: E731
    return ImageData(_normalise(name, xtr), to_y(ytr), _normalise(name, xte), to_y(yte), name)
