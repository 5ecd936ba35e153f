"""Attention written the way Hugging Face writes it (view(B, L, -1, head_size), a fixed head size,
keyword inputs): whole heads are the units, the result verifies, and the activation criteria
and least-squares recovery accept sequences of different lengths given as dicts."""
import torch
from torch import nn

import edgeprune as ep
from edgeprune.recovery import reconstruct


class HFStyleAttention(nn.Module):
    def __init__(self, dim: int = 32, head_size: int = 8):
        super().__init__()
        self.head_size = head_size
        self.emb = nn.Embedding(50, dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        shape = (*h.shape[:-1], -1, self.head_size)  # the head count is inferred, the size fixed
        q, k, v = (f(h).view(*shape).transpose(1, 2) for f in (self.q, self.k, self.v))
        mask = attention_mask[:, None, None, :].bool()
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.head_size ** -0.5)
        out = self.norm(h + self.o(a.transpose(1, 2).reshape(*h.shape[:-1], -1)))
        m = attention_mask.unsqueeze(-1).float()
        return (out * m).sum(1) / m.sum(1)


def _batch(n: int, length: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_heads_are_units_and_pruning_them_verifies():
    torch.manual_seed(0)
    model = HFStyleAttention().eval()
    x = _batch(2, 7, 0)
    data = [_batch(4, 5, 1), _batch(4, 9, 2)]  # lengths differ from the example and each other
    for criterion in ("l2", "mean_activation"):
        r = ep.prune(model, ep.PruneConfig(criterion=criterion, prune_ratio=0.5, strict=False), example_inputs=x,
                     data=data)
        heads = [g for g in r.plan.groups if g["channels_per_unit"] == 8]
        assert heads and heads[0]["units"] == 4 and heads[0]["removed"] == 2
        assert r.model.q.out_features == 16 and r.model.o.in_features == 16
        assert r.verification.ok
    before = nn.functional.mse_loss(r.model(**data[1]), model(**data[1]))
    reconstruct(model, r.model, r.plan, data)  # dict batches, no backprop
    after = nn.functional.mse_loss(r.model(**data[1]), model(**data[1]))
    assert after < before
