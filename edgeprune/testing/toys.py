"""Tiny networks, one per supported layer type or coupling pattern, for tests and examples.
`TOYS[name]() -> (model, example_inputs)`."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

TOYS: dict[str, Callable[[], tuple[nn.Module, object]]] = {}


def toy(name: str):
    def wrap(fn):
        TOYS[name] = fn
        return fn
    return wrap


class Seq(nn.Sequential):
    pass


def _seq(*layers, x):
    return Seq(*layers), x


@toy("conv1d")
def _c1():
    return _seq(nn.Conv1d(3, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 4, 3), x=torch.randn(2, 3, 16))


@toy("conv2d")
def _c2():
    return _seq(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3), x=torch.randn(2, 3, 8, 8))


@toy("conv3d")
def _c3():
    return _seq(nn.Conv3d(2, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.Conv3d(8, 4, 1), x=torch.randn(1, 2, 4, 5, 5))


@toy("conv_transpose1d")
def _ct1():
    return _seq(nn.Conv1d(3, 8, 3), nn.ReLU(), nn.ConvTranspose1d(8, 6, 3, stride=2), nn.ReLU(),
                nn.Conv1d(6, 2, 1), x=torch.randn(1, 3, 10))


@toy("conv_transpose2d")
def _ct2():
    return _seq(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 6, 3, stride=2), nn.BatchNorm2d(6),
                nn.Conv2d(6, 2, 1), x=torch.randn(1, 3, 8, 8))


@toy("conv_transpose3d")
def _ct3():
    return _seq(nn.Conv3d(2, 8, 1), nn.ConvTranspose3d(8, 6, 2, stride=2), nn.Conv3d(6, 2, 1), x=torch.randn(1, 2, 3, 3, 3))


@toy("depthwise")
def _dw():
    return _seq(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8),
                nn.ReLU(), nn.Conv2d(8, 4, 1), x=torch.randn(1, 3, 6, 6))


@toy("depthwise_multiplier")
def _dwm():
    return _seq(nn.Conv2d(3, 6, 1), nn.Conv2d(6, 12, 3, padding=1, groups=6), nn.ReLU(), nn.Conv2d(12, 4, 1),
                x=torch.randn(1, 3, 6, 6))


@toy("grouped")
def _grp():
    return _seq(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1, groups=4), nn.BatchNorm2d(12),
                nn.ReLU(), nn.Conv2d(12, 4, 1), x=torch.randn(1, 3, 6, 6))


@toy("grouped_transpose")
def _grpt():
    return _seq(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.ConvTranspose2d(8, 12, 2, stride=2, groups=4), nn.ReLU(),
                nn.Conv2d(12, 4, 1), x=torch.randn(1, 3, 4, 4))


@toy("linear")
def _lin():
    return _seq(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3), x=torch.randn(4, 10))


@toy("linear_3d_input")
def _lin3():
    return _seq(nn.Linear(10, 16), nn.GELU(), nn.Linear(16, 3), x=torch.randn(2, 5, 10))


@toy("batchnorm1d")
def _bn1():
    return _seq(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3), x=torch.randn(4, 10))


@toy("instancenorm")
def _in():
    return _seq(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True, track_running_stats=True), nn.ReLU(),
                nn.Conv2d(8, 2, 1), x=torch.randn(2, 3, 6, 6))


@toy("groupnorm")
def _gn():
    return _seq(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.ReLU(), nn.Conv2d(8, 2, 1), x=torch.randn(2, 3, 6, 6))


@toy("layernorm")
def _ln():
    return _seq(nn.Linear(10, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3), x=torch.randn(2, 5, 10))


@toy("rmsnorm")
def _rms():
    return _seq(nn.Linear(10, 16), nn.RMSNorm(16), nn.Linear(16, 3), x=torch.randn(2, 5, 10))


@toy("prelu")
def _prelu():
    return _seq(nn.Conv2d(3, 8, 3), nn.PReLU(8), nn.Conv2d(8, 2, 1), x=torch.randn(1, 3, 6, 6))


class EmbeddingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc = nn.Linear(16, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, ids):
        return self.out(F.relu(self.fc(self.emb(ids))).mean(1))


@toy("embedding")
def _emb():
    return EmbeddingNet(), torch.randint(0, 50, (2, 7))


class AttentionNet(nn.Module):
    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.att = nn.MultiheadAttention(16, 4, batch_first=batch_first)
        self.norm = nn.LayerNorm(16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.inp(x)
        a, _ = self.att(h, h, h, need_weights=False)
        h = self.norm(h + a)
        h = h + self.mlp(h)
        return self.head(h.mean(1 if self.att.batch_first else 0))


@toy("multihead_attention")
def _mha():
    return AttentionNet(), torch.randn(2, 5, 6)


@toy("multihead_attention_seq_first")
def _mha_sf():
    return AttentionNet(batch_first=False), torch.randn(5, 2, 6)


class RecurrentNet(nn.Module):
    def __init__(self, cell: type, layers: int = 2, bidirectional: bool = False):
        super().__init__()
        self.inp = nn.Linear(4, 10)
        self.rnn = cell(10, 12, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(12 * (2 if bidirectional else 1), 3)

    def forward(self, x):
        out, _ = self.rnn(self.inp(x))
        return self.head(out[:, -1])


@toy("lstm")
def _lstm():
    return RecurrentNet(nn.LSTM), torch.randn(2, 6, 4)


@toy("lstm_bidirectional")
def _lstm_bi():
    return RecurrentNet(nn.LSTM, 1, True), torch.randn(2, 6, 4)


@toy("gru")
def _gru():
    return RecurrentNet(nn.GRU), torch.randn(2, 6, 4)


@toy("rnn")
def _rnn():
    return RecurrentNet(nn.RNN, 1), torch.randn(2, 6, 4)


class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.b = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.a(x))
        x = x + self.b(x)
        return self.head(x.mean((2, 3)))


@toy("residual")
def _res():
    return ResidualNet(), torch.randn(1, 3, 6, 6)


class ConcatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.c = nn.Conv2d(10, 5, 1)
        self.head = nn.Linear(5 * 4 * 4, 2)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), self.b(x)], dim=1)
        return self.head(torch.flatten(self.c(y), 1))


@toy("concat_flatten")
def _cat():
    return ConcatNet(), torch.randn(1, 3, 4, 4)


class SplitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x1, x2 = self.a(x).chunk(2, dim=1)
        return self.c(torch.cat([x1, self.b(x2)], 1))


@toy("chunk")
def _chunk():
    return SplitNet(), torch.randn(1, 3, 5, 5)


class ShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        a = self.a(x)
        y = torch.cat([a, self.b(a)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle
        return self.c(y)


@toy("channel_shuffle")
def _shuffle():
    return ShuffleNet(), torch.randn(1, 3, 4, 4)


class SENet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return self.out(x * s)


@toy("squeeze_excitation")
def _se():
    return SENet(), torch.randn(1, 3, 6, 6)


class HeadsNet(nn.Module):
    """Attention written with reshapes and matmuls (as in many custom transformers)."""

    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
        self.head = nn.Linear(dim, 2)

    def forward(self, x):
        b, n, c = x.shape  # the head width is computed from the residual width: not prunable
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * 0.5
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        y = self.proj(y) + x
        return self.head(y + self.mlp(y))


@toy("functional_attention")
def _heads():
    return HeadsNet(), torch.randn(2, 5, 16)


class MultiIO(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(6, 8)
        self.mid = nn.Linear(8, 8)
        self.out1, self.out2 = nn.Linear(8, 2), nn.Linear(8, 3)

    def forward(self, x, extra):
        h = F.relu(self.mid(F.relu(self.a(x) + self.b(extra["y"]))))
        return {"first": self.out1(h), "second": (self.out2(h),)}


@toy("multi_input_output")
def _mio():
    return MultiIO(), (torch.randn(2, 4), {"y": torch.randn(2, 6)})


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.fx can not trace it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        if h.sum() > -1e9:
            h = h * 2
        return self.b(h)


@toy("data_dependent")
def _dd():
    return DataDependent(), torch.randn(2, 4)
