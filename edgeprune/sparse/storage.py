"""What sparse weights cost to store: dense, bitmask (1 bit per weight + the non-zeros) and
CSR (row pointers + column indices + non-zeros), in bytes, for int8 or fp32 values. The
cheapest format is what a microcontroller build should use (DTMM-style bitmasks win at
moderate sparsity, CSR at high sparsity)."""
from __future__ import annotations

import math

import torch


def bitmask_bytes(w: torch.Tensor, value_bytes: int = 1) -> int:
    return math.ceil(w.numel() / 8) + int((w != 0).sum()) * value_bytes


def csr_bytes(w: torch.Tensor, value_bytes: int = 1) -> int:
    rows = w.reshape(w.shape[0], -1)
    nnz = int((rows != 0).sum())
    index_bytes = 1 if rows.shape[1] <= 256 else (2 if rows.shape[1] <= 65536 else 4)
    ptr_bytes = 2 if nnz < 65536 else 4
    return (rows.shape[0] + 1) * ptr_bytes + nnz * (index_bytes + value_bytes)


def storage_report(weights: dict[str, torch.Tensor], value_bytes: int = 1) -> dict[str, int]:
    dense = sum(w.numel() * value_bytes for w in weights.values())
    bit = sum(bitmask_bytes(w, value_bytes) for w in weights.values())
    csr = sum(csr_bytes(w, value_bytes) for w in weights.values())
    best = sum(min(w.numel() * value_bytes, bitmask_bytes(w, value_bytes), csr_bytes(w, value_bytes))
               for w in weights.values())
    return {"dense": dense, "bitmask": bit, "csr": csr, "best_per_layer": best}
