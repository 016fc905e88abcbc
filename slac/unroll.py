"""An MLP applied at every step of a loop (the posterior filter's), with autograd's work cut.

Autograd gives a layer used at T steps T weight gradients, each an outer product over the
step's few rows, adds them up one by one, and records a dozen nodes per MLP step. Here one
autograd node per step does the MLP (and a Gaussian head) forward and backward by hand; its
backward gives the input's gradient and keeps each layer's output gradient. When backward
reaches a weight (after every step, as its gradient depends on all of them) one matmul over
all steps' rows gives its gradient: the same sum, added in another order. The forward values
are the stock layers' bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Head:
    """A diagonal Gaussian from the last layer's output: its first half the mean, std
    softplus(second half) + ``floor``, that half's gradient clipped to [-clip, clip]."""

    floor: float
    clip: float


class Tape:
    """One layer's inputs and output gradients, step by step."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.grads: list[torch.Tensor | None] = []

    def weight_grads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum over the steps of g^T x and of g: the weight's and the bias's gradients."""
        pairs = [(x, g) for x, g in zip(self.inputs, self.grads, strict=True) if g is not None]
        x = torch.cat([x.reshape(-1, x.shape[-1]) for x, _ in pairs])
        g = torch.cat([g.reshape(-1, g.shape[-1]) for _, g in pairs])
        return g.t() @ x, g.sum(0)


class Tied(torch.autograd.Function):
    """The layer's weight and bias as the loop uses them: their gradient is the tape's sum."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, tape: Tape):
        ctx.tape = tape
        ctx.set_materialize_grads(False)
        return weight.view_as(weight), bias.view_as(bias)

    @staticmethod
    def backward(ctx, *_):
        tape = ctx.tape
        if not any(g is not None for g in tape.grads):
            return None, None, None
        g_w, g_b = tape.weight_grads()
        return g_w, g_b, None


class MLPStep(torch.autograd.Function):
    """Linear, leaky ReLU, ..., linear at one step, then with ``head`` a Gaussian's mean and
    std, autograd's ops done by hand: backward gives the input's gradient and tapes each
    layer's input and output gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, head: Head | None, *layers):
        ctx.slope, ctx.head = slope, head
        ctx.tapes, ctx.index = layers[2::3], len(layers[2].inputs)
        hs = [x.detach()]
        for i in range(0, len(layers), 3):
            w, b, tape = layers[i:i + 3]
            tape.inputs.append(hs[-1])
            tape.grads.append(None)
            y = torch.addmm(b, hs[-1], w.t())
            hs.append(F.leaky_relu(y, slope) if i + 3 < len(layers) else y)
        ctx.save_for_backward(*hs[1:], *layers[0::3])
        if head is None:
            return hs[-1]
        mean, pre_std = hs[-1].chunk(2, -1)
        return mean, F.softplus(pre_std) + head.floor

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        n = len(ctx.tapes)
        saved = ctx.saved_tensors
        hs, ws = saved[:n], saved[n:]
        if ctx.head is None:
            grad = grads[0]
        else:  # the std's gradient through the softplus, clipped (Appendix B)
            g_mean, g_std = grads  # zeros where unused (autograd's default)
            pre_std = hs[-1].chunk(2, -1)[1]
            g_pre = torch.ops.aten.softplus_backward(g_std, pre_std, 1.0, 20.0)
            grad = torch.cat([g_mean, g_pre.clamp_(-ctx.head.clip, ctx.head.clip)], -1)
        for i in reversed(range(n)):
            ctx.tapes[i].grads[ctx.index] = grad
            if i:
                grad = torch.ops.aten.leaky_relu_backward(grad @ ws[i], hs[i - 1], ctx.slope,
                                                          True)
        g_x = grad @ ws[0] if ctx.needs_input_grad[0] else None
        return (g_x, None, None, *[None] * (3 * n))


class Unrolled:
    """``net`` (``nn.Linear`` layers with leaky ReLUs between) for the steps of one loop, with
    ``head`` its output as a Gaussian's mean and std: call it like ``net`` at each step; make a
    new one for each pass (it holds that pass's tapes)."""

    def __init__(self, net: nn.Sequential, head: Head | None = None):
        if not all(isinstance(m, nn.Linear) for m in net[0::2]) or not all(
                isinstance(m, nn.LeakyReLU) and m.negative_slope >= 0 for m in net[1::2]):
            raise TypeError(f"not linear layers with leaky ReLUs between: {net}")
        self.slope, self.head = (net[1].negative_slope if len(net) > 1 else 0.0), head
        self.layers: list = []
        for m in net[0::2]:
            tape = Tape()
            self.layers += [*Tied.apply(m.weight, m.bias, tape), tape]

    def __call__(self, x: torch.Tensor):
        return MLPStep.apply(x, self.slope, self.head, *self.layers)
