"""HAPT smartphone activity data (shipped inside the package, CC BY 4.0; see HAPT_ATTRIBUTION.md).

Windows of `window` samples (default 128 = 2.56 s at 50 Hz) with `overlap` (default 50 %).
A window never spans a gap in the recording, a change of label, of session or of user.
Users are split into train / val / test; normalisation is fitted on the training users only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.errors import ConfigError

DATA_FILE = Path(__file__).with_name("hapt.npz")
ACTIVITIES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
              "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND"]
DEFAULT_SPLIT = (tuple(range(1, 19)), tuple(range(19, 22)), tuple(range(22, 31)))


def _windows(signals, labels, users, sessions, positions, window: int, step: int):
    """Start indices of windows lying inside one uninterrupted run of the same label/user/session."""
    n = len(labels)
    brk = np.ones(n, bool)
    brk[1:] = ((labels[1:] != labels[:-1]) | (users[1:] != users[:-1]) | (sessions[1:] != sessions[:-1])
               | (positions[1:] != positions[:-1] + 1))
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n)
    out = [np.arange(s, e - window + 1, step) for s, e in zip(starts, ends) if e - s >= window]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@dataclass
class HAPT:
    """Windowed HAPT. `x`: (N, 6, window) float32 normalised; `y`: int64 class; `user`: int."""

    x: np.ndarray
    y: np.ndarray
    user: np.ndarray
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    split: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    def subset(self, users) -> tuple[torch.Tensor, torch.Tensor]:
        sel = np.isin(self.user, list(users))
        return torch.from_numpy(self.x[sel]), torch.from_numpy(self.y[sel])

    def train(self):
        return self.subset(self.split[0])

    def val(self):
        return self.subset(self.split[1])

    def test(self):
        return self.subset(self.split[2])

    def user_data(self, user: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One user's windows, e.g. for a federated client."""
        return self.subset([user])

    def loaders(self, batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader, DataLoader]:
        g = torch.Generator().manual_seed(seed)
        tr = DataLoader(TensorDataset(*self.train()), batch_size=batch_size, shuffle=True, generator=g)
        va = DataLoader(TensorDataset(*self.val()), batch_size=256)
        te = DataLoader(TensorDataset(*self.test()), batch_size=256)
        return tr, va, te

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_hapt(window: int = 128, overlap: float = 0.5, transitions: bool = False,
              split=DEFAULT_SPLIT, path: str | Path = DATA_FILE) -> HAPT:
    """Load and window HAPT. `transitions=True` gives 12 classes, else the 6 activities."""
    if window < 8 or not 0.0 <= overlap < 1.0:
        raise ConfigError(f"window must be >= 8 and overlap in [0, 1): got {window}, {overlap}")
    users_all = set(range(1, 31))
    flat = [u for part in split for u in part]
    if len(flat) != len(set(flat)) or not set(flat) <= users_all:
        raise ConfigError("split must be three disjoint lists of user ids in 1..30")
    with np.load(path, allow_pickle=False) as d:
        sig, lab, usr, ses, pos = (d[k] for k in ("signals", "labels", "user", "session", "position"))
    step = max(1, int(round(window * (1 - overlap))))
    starts = _windows(sig, lab, usr, ses, pos, window, step)
    y = lab[starts].astype(np.int64) - 1
    keep = y < (12 if transitions else 6)
    starts, y = starts[keep], y[keep]
    x = np.lib.stride_tricks.sliding_window_view(sig, window, axis=0)[starts]  # (N, 6, window)
    user = usr[starts].astype(np.int64)
    train_sel = np.isin(user, list(split[0]))
    mean = x[train_sel].mean(axis=(0, 2), keepdims=True)
    std = x[train_sel].std(axis=(0, 2), keepdims=True) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    classes = ACTIVITIES[: (12 if transitions else 6)]
    return HAPT(np.ascontiguousarray(x), y, user, classes, mean.squeeze(), std.squeeze(), tuple(map(tuple, split)))
