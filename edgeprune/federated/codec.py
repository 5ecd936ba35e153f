"""What travels between server and devices, and how many bytes it takes.

A model travels as a list of numpy arrays (Flower's `Parameters`). `encode`/`decode` turn
float tensors into what a strategy sends: float32 as they are, or 8-bit per tensor with an
asymmetric min-max scale (FL-PQSU's `Quantification.py` scheme: q = round((x - min) / scale),
scale = (max - min) / 255), two small float32 arrays carrying min and scale. Bytes are counted
on the serialized Flower tensors, so the figures are what gRPC would carry (plus framing)."""
from __future__ import annotations

import numpy as np
from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays


def encode(arrays: list[np.ndarray], bits: int = 32) -> list[np.ndarray]:
    if bits == 32:
        return [np.asarray(a, dtype=np.float32) for a in arrays]
    if bits != 8:
        raise ValueError(f"bits must be 32 or 8, got {bits}")
    out = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        q = np.clip(np.round((a - lo) / scale), 0, 255).astype(np.uint8)
        out += [q, np.array([lo, scale], dtype=np.float32)]
    return out


def decode(arrays: list[np.ndarray], bits: int = 32) -> list[np.ndarray]:
    if bits == 32:
        return [np.asarray(a, dtype=np.float32) for a in arrays]
    out = []
    for q, meta in zip(arrays[0::2], arrays[1::2]):
        out.append((q.astype(np.float32) * meta[1] + meta[0]).astype(np.float32))
    return out


def to_parameters(arrays: list[np.ndarray], bits: int = 32) -> Parameters:
    return ndarrays_to_parameters(encode(arrays, bits))


def from_parameters(params: Parameters, bits: int = 32) -> list[np.ndarray]:
    return decode(parameters_to_ndarrays(params), bits)


def nbytes(params: Parameters) -> int:
    """Serialized size of a Flower Parameters object (its tensors as sent)."""
    return sum(len(t) for t in params.tensors)


def encode_sparse(arrays: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Magnitude-prune every matrix/kernel to `sparsity` and send it as a packed bitmask plus its
    non-zeros in 8 bits (GWEP-style joint pruning and quantisation); vectors go 8-bit dense.
    Per tensor: [mask bits (uint8), values (uint8), (min, scale) (float32)]."""
    out = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim >= 2:
            k = int(round(sparsity * a.size))
            mask = np.ones(a.size, dtype=bool)
            if k:
                mask[np.argpartition(np.abs(a).reshape(-1), k - 1)[:k]] = False
        else:
            mask = np.ones(a.size, dtype=bool)
        q, meta = encode([a.reshape(-1)[mask]], 8)
        out += [np.packbits(mask), q, meta]
    return out


def decode_sparse(arrays: list[np.ndarray], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    if len(arrays) != 3 * len(shapes):
        raise ValueError(f"expected {3 * len(shapes)} arrays for {len(shapes)} sparse tensors, got {len(arrays)}")
    out = []
    for (bits, q, meta), shape in zip(zip(arrays[0::3], arrays[1::3], arrays[2::3]), shapes):
        size = int(np.prod(shape)) if shape else 1
        mask = np.unpackbits(bits)[:size].astype(bool)
        if int(mask.sum()) != q.size:
            raise ValueError("sparse tensor: mask and values disagree")
        dense = np.zeros(size, dtype=np.float32)
        dense[mask] = decode([q, meta], 8)[0]
        out.append(dense.reshape(shape))
    return out
