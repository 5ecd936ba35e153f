"""A task: train / validation / test loaders, the number of classes and one input's shape,
for the shipped HAPT data or an image dataset; and the calibration samples methods read."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.data.hapt import load_hapt
from edgeprune.data.images import load_image_dataset


@dataclass
class Task:
    name: str
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    input_shape: tuple[int, ...]


def load_task(name: str, batch_size: int = 64, npz: str | None = None, root: str = "~/.cache/edgeprune",
              download: bool = False, limit: int | None = None, seed: int = 0) -> Task:
    """Data loaders for 'hapt' (shipped), 'hapt12' (with transitions) or an image dataset."""
    g = torch.Generator().manual_seed(seed)
    if name in ("hapt", "hapt12"):
        d = load_hapt(transitions=name == "hapt12")
        tr, va, te = d.loaders(batch_size, seed)
        return Task(name, tr, va, te, d.num_classes, tuple(d.x.shape[1:]))
    d = load_image_dataset(name, root, npz=npz, download=download, limit=limit)
    n_val = max(1, len(d.x_train) // 12)
    perm = torch.randperm(len(d.x_train), generator=g)
    vi, ti = perm[:n_val], perm[n_val:]
    tr = DataLoader(TensorDataset(d.x_train[ti], d.y_train[ti]), batch_size, shuffle=True, generator=g)
    va = DataLoader(TensorDataset(d.x_train[vi], d.y_train[vi]), 512)
    te = DataLoader(TensorDataset(d.x_test, d.y_test), 512)
    return Task(name, tr, va, te, 10, tuple(d.x_train.shape[1:]))


def calibration_batches(task: Task, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first training batches holding at least `n` samples."""
    return take_samples(task.train, n)



def take_samples(loader: Iterable, n: int) -> list:
    """The first batches of `loader` holding at least `n` samples (all of them if fewer)."""
    out, seen = [], 0
    for x, y in loader:
        out.append((x, y))
        seen += len(y)
        if seen >= n:
            break
    return out
