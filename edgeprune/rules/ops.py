"""Rules for torch functions and tensor methods met outside leaf modules: elementwise maths,
pooling, reductions, shape changes, concatenation, splitting, indexing, matmul, attention."""
from __future__ import annotations

import numpy as np
from torch.utils._pytree import tree_flatten

from edgeprune.opgraph import OpNode, Value, ValueRef
from edgeprune.rules.base import CouplingContext, register_op


def _same_all(ctx, x: Value, y: Value, skip=()) -> None:
    for d in range(min(x.ndim, y.ndim)):
        if d not in skip and x.shape[d] == y.shape[d]:
            ctx.same(ctx.value(x, d), ctx.value(y, d))


def _broadcast(ctx: CouplingContext, node: OpNode) -> None:
    """Elementwise with broadcasting: aligned dims of equal size are tied; size-1 dims broadcast."""
    y = node.outputs[0]
    for x in node.inputs:
        off = y.ndim - x.ndim
        for d in range(x.ndim):
            if d + off < 0:
                continue
            if x.shape[d] == y.shape[d + off]:
                ctx.same(ctx.value(x, d), ctx.value(y, d + off))
            elif x.shape[d] == 1:
                ctx.value(x, d)  # broadcast: nothing to remove on this side


UNARY = """relu gelu silu sigmoid tanh hardswish hardsigmoid hardtanh relu6 leaky_relu elu selu celu
mish softplus softsign dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout clone
contiguous to float double half bfloat16 type type_as detach abs neg exp log log2 log1p sqrt rsqrt square
reciprocal erf sin cos sign nan_to_num round floor ceil logical_not bitwise_not log_sigmoid logsigmoid
threshold silu_ gelu_ clamp clip clamp_min clamp_max zeros_like ones_like empty_like full_like rand_like
randn_like sigmoid_ hardshrink softshrink tanhshrink pos requires_grad cpu cuda positive""".split()
BINARY = """add sub rsub mul div rdiv pow rpow maximum minimum eq ne lt gt le ge fmod remainder where
lerp addcmul addcdiv masked_fill logical_and logical_or logical_xor and or xor hypot atan2 copysign
mod floor_divide bitwise_and bitwise_or copy""".split()
register_op(*UNARY)(_broadcast)
register_op(*BINARY)(_broadcast)


def _leading(keep_from_end: int):
    """Pooling/resizing: all but the last `keep_from_end` dims pass through."""
    def rule(ctx, node):
        x = node.inputs[0]
        for out in node.outputs:
            for d in range(x.ndim - keep_from_end):
                ctx.same(ctx.value(x, d), ctx.value(out, d))
    return rule


for _k in (1, 2, 3):
    register_op(f"max_pool{_k}d", f"max_pool{_k}d_with_indices", f"avg_pool{_k}d", f"adaptive_avg_pool{_k}d",
                f"adaptive_max_pool{_k}d", f"adaptive_max_pool{_k}d_with_indices", f"lp_pool{_k}d",
                f"fractional_max_pool{_k}d")(_leading(_k))


@register_op("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
def _interpolate(ctx, node):
    x = node.inputs[0]
    _leading(x.ndim - 2)(ctx, node)


@register_op("pad")
def _pad(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    pads = node.arg(1, "pad")
    padded = {x.ndim - 1 - i // 2 for i, p in enumerate(pads) if p}
    _same_all(ctx, x, y, skip=padded)


@register_op("prelu")
def _prelu(ctx, node):
    x, w, y = node.inputs[0], node.arg(1, "weight").value, node.outputs[0]
    _same_all(ctx, x, y)
    if w.shape[0] > 1:
        ctx.same(ctx.value(x, 1), ctx.value(w, 0, "act"))


def _dims(node: OpNode, pos: int, ndim: int):
    d = node.arg(pos, "dim")
    if d is None:
        return None
    return {x % ndim for x in (d if isinstance(d, (tuple, list)) else [d])}


def _reduction(additive: bool):
    def rule(ctx, node):
        x = node.inputs[0]
        if len(node.inputs) > 1 and node.target in ("max", "min"):  # torch.max(a, b): elementwise
            return _broadcast(ctx, node)
        dims = _dims(node, 1, x.ndim)
        if dims is None:
            if additive:
                for d in range(x.ndim):
                    ctx.value(x, d)
            return
        keep = node.arg(2, "keepdim", False)
        for out in node.outputs:
            j = 0
            for d in range(x.ndim):
                if d in dims:
                    if additive:
                        ctx.value(x, d)  # zeros add nothing: removing channels is exact
                    if keep:
                        j += 1
                    continue
                ctx.same(ctx.value(x, d), ctx.value(out, j))
                j += 1
    return rule


register_op("sum", "nansum")(_reduction(True))
register_op("mean", "nanmean", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp", "prod",
            "any", "all", "argmax", "argmin", "median")(_reduction(False))


@register_op("softmax", "log_softmax", "cumsum", "cumprod", "normalize")
def _along_dim(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    dim = node.arg(1, "dim")
    if node.target == "normalize":
        dim = node.arg(2, "dim", 1)
    _same_all(ctx, x, y, skip={dim % x.ndim} if dim is not None else set(range(x.ndim)))


@register_op("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "ravel")
def _reshape(ctx, node):
    ctx.reshape(node.inputs[0], node.outputs[0])


@register_op("permute", "transpose", "t", "movedim", "mT", "T")
def _permute(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    n = x.ndim
    if node.target == "permute":
        a = node.args[1:] if len(node.args) > 2 or not isinstance(node.arg(1, "dims"), (tuple, list)) else node.arg(1, "dims")
        perm = [int(d) % n for d in a]
    elif node.target in ("transpose", "movedim"):
        d0, d1 = node.arg(1, "dim0"), node.arg(2, "dim1")
        d0, d1 = int(d0) % n, int(d1) % n
        perm = list(range(n))
        if node.target == "transpose":
            perm[d0], perm[d1] = d1, d0
        else:
            perm.pop(d0)
            perm.insert(d1, d0)
    else:
        perm = list(range(n))[::-1] if node.target != "mT" else list(range(n - 2)) + [n - 1, n - 2]
    for i, p in enumerate(perm):
        ctx.same(ctx.value(x, p), ctx.value(y, i))


@register_op("expand", "expand_as", "broadcast_to")
def _expand(ctx, node):
    _broadcast(ctx, OpNode(node.index, node.target, node.target, node.inputs[:1], node.outputs))


@register_op("cat", "stack", "hstack", "vstack")
def _cat(ctx, node):
    y = node.outputs[0]
    xs = [v for v in node.inputs]
    dim = node.arg(1, "dim", 0) % (y.ndim if node.target != "cat" else xs[0].ndim)
    if node.target == "stack":
        for x in xs:
            for d in range(x.ndim):
                ctx.same(ctx.value(x, d), ctx.value(y, d if d < dim else d + 1))
        return
    if node.target != "cat":
        return
    offset = 0
    ys = ctx.value(y, dim)
    for x in xs:
        if x.ndim != y.ndim:  # an empty tensor in the list
            continue
        for d in range(x.ndim):
            if d != dim:
                ctx.same(ctx.value(x, d), ctx.value(y, d))
        ctx.same(ctx.value(x, dim), ys, 0, offset)
        offset += x.shape[dim]


@register_op("chunk")
def _chunk(ctx, node):
    """chunk(n) is relative: each chunk must lose the same channels, so offset j is tied in all."""
    x = node.inputs[0]
    dim = node.arg(2, "dim", 0) % x.ndim
    outs = node.outputs
    size = outs[0].shape[dim]
    if any(o.shape[dim] != size for o in outs) or size * len(outs) != x.shape[dim]:
        return _same_rest(ctx, x, outs, dim)
    _same_rest(ctx, x, outs, dim)
    xs = ctx.value(x, dim)
    c = np.arange(x.shape[dim])
    ctx.link(xs, c, xs, c % size)
    for k, o in enumerate(outs):
        ctx.same(xs, ctx.value(o, dim), k * size, 0, size)


def _same_rest(ctx, x, outs, dim):
    for o in outs:
        for d in range(x.ndim):
            if d != dim:
                ctx.same(ctx.value(x, d), ctx.value(o, d))


@register_op("split", "split_with_sizes", "tensor_split", "unbind")
def _split(ctx, node):
    """Sizes are constants of the calling code: the split axis can not change; others pass."""
    x = node.inputs[0]
    dim = (node.arg(1, "dim", 0) if node.target == "unbind" else node.arg(2, "dim", 0)) % x.ndim
    for o in node.outputs:
        j = 0
        for d in range(x.ndim):
            if d == dim and node.target == "unbind":
                continue
            if d != dim:
                ctx.same(ctx.value(x, d), ctx.value(o, j))
            j += 1


@register_op("getitem")
def _getitem(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    idx = node.args[1]
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (ValueRef, list)) for i in idx) or len(node.inputs) > 1:
        return  # advanced indexing: nothing passes
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    expanded: list = []
    for i in idx:
        if i is Ellipsis:
            expanded += [slice(None)] * (x.ndim - n_real)
        else:
            expanded.append(i)
    expanded += [slice(None)] * (x.ndim - sum(1 for i in expanded if i is not None))
    dx = dy = 0
    for i in expanded:
        if i is None:
            dy += 1
        elif isinstance(i, int):
            dx += 1
        elif isinstance(i, slice):
            if i == slice(None) or (i.start in (None, 0) and i.step in (None, 1) and
                                    (i.stop is None or i.stop >= x.shape[dx])):
                ctx.same(ctx.value(x, dx), ctx.value(y, dy))
            dx += 1
            dy += 1


@register_op("matmul", "bmm", "mm", "rmatmul")
def _matmul(ctx, node):
    a, b = node.inputs[:2]
    if node.target == "rmatmul":
        a, b = b, a
    y = node.outputs[0]
    if a.ndim < 2 or b.ndim < 2:
        return
    weight = b.param is not None and a.param is None  # x @ W: W's rows read, its columns produce
    ctx.same(ctx.value(a, -1), ctx.value(b, -2, "in" if weight else None))  # contracted: zeros add nothing
    ctx.same(ctx.value(a, -2), ctx.value(y, -2))
    ctx.same(ctx.value(b, -1, "out" if weight else None), ctx.value(y, -1))
    for x in (a, b):
        off = y.ndim - x.ndim
        for d in range(x.ndim - 2):
            if x.shape[d] == y.shape[d + off]:
                ctx.same(ctx.value(x, d), ctx.value(y, d + off))
            else:
                ctx.value(x, d)


@register_op("scaled_dot_product_attention")
def _sdpa(ctx, node):
    q, k, v = node.inputs[:3]
    y = node.outputs[0]
    for d in range(q.ndim - 2):
        for x in (q, k, v):
            ctx.same(ctx.value(x, d), ctx.value(y, d))
    ctx.same(ctx.value(q, -2), ctx.value(y, -2))
    ctx.same(ctx.value(v, -1), ctx.value(y, -1))
    if node.kwargs.get("scale") is not None:  # otherwise the scale follows q's width
        ctx.same(ctx.value(q, -1), ctx.value(k, -1))


@register_op("channel_shuffle", "native_channel_shuffle")
def _channel_shuffle(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    g = node.arg(1, "groups")
    C = x.shape[1]
    k = C // g
    _same_all(ctx, x, y, skip={1})
    xs, ys = ctx.value(x, 1), ctx.value(y, 1)
    c = np.arange(C)
    a, b = c // k, c % k
    ctx.link(xs, c, ys, b * g + a)
    ctx.link(xs, c, xs, b)  # equal removal in every group


def _creates(ctx, node):
    """Creation ops: sizes come from the code, so their outputs stay as they are."""


register_op("zeros", "ones", "empty", "full", "arange", "linspace", "rand", "randn", "randint", "tensor",
            "as_tensor", "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "eye", "ones_like_",
            "meshgrid", "roll", "flip")(_creates)


def tensors_in(obj) -> list[Value]:
    return [a.value for a in tree_flatten(obj)[0] if isinstance(a, ValueRef)]


@register_op("einsum")
def _einsum(ctx, node):
    """Letters kept in the output pass through; letters summed over tie their operands' dims
    (zeros add nothing, so removing such channels is exact)."""
    eq = node.args[0] if isinstance(node.args[0], str) else None
    if eq is None or "->" not in eq:
        return
    lhs, rhs = eq.replace(" ", "").split("->")
    operands = tensors_in(node.args[1:])
    y = node.outputs[0]
    specs = lhs.split(",")
    if len(specs) != len(operands):
        return

    def expand(spec: str, ndim: int) -> str:
        if "..." not in spec:
            return spec
        n = ndim - (len(spec) - 3)
        return spec.replace("...", "".join(chr(0x100 + i) for i in range(n)))
    specs = [expand(s, v.ndim) for s, v in zip(specs, operands)]
    rhs = expand(rhs, y.ndim)
    if any(len(s) != v.ndim for s, v in zip(specs, operands)) or len(rhs) != y.ndim:
        return
    first: dict[str, tuple] = {}
    for spec, v in zip(specs, operands):
        for d, letter in enumerate(spec):
            if letter in rhs:
                j = rhs.index(letter)
                if v.shape[d] == y.shape[j]:
                    ctx.same(ctx.value(v, d), ctx.value(y, j))
                else:
                    ctx.value(v, d)
            elif letter in first:
                u, e = first[letter]
                if u.shape[e] == v.shape[d]:
                    ctx.same(ctx.value(u, e), ctx.value(v, d))
            else:
                first[letter] = (v, d)
                ctx.value(v, d)
