"""Exact rewrites of three convolution layers for CPU speed; :mod:`slac.networks` uses them.

Each computes the same function and gradients as the PyTorch layer it replaces (checked by
``tests/test_equivalence.py``); only how oneDNN is asked to compute it changes. Measurements of
each are in ``docs/performance.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def blas_is_slower_than_onednn() -> bool:
    """Whether the 3x3 stride-2 layers' weight gradients should be oneDNN's own rather than one
    BLAS matmul over patches: on AMD CPUs with AVX-512, where MKL's matmul runs at AVX2 speed
    and oneDNN's kernels use AVX-512 (docs/performance.md; `slac bench --layers` shows each
    layer's time)."""
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("vendor_id") and "AuthenticAMD" in line for line in f)
    except OSError:
        return False


def onednn_matmul_available() -> bool:
    """Whether torch's build has oneDNN's fp32 matmul (``mkldnn._linear_pointwise``)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn,
                                                            "_linear_pointwise")


# Whether those weight gradients are patch matmuls, and whether linear layers' matmuls of at
# least ONEDNN_MIN_ROWS rows go to oneDNN (read at each call, so tests can set them).
BLAS_SLOWER = blas_is_slower_than_onednn()
WEIGHT_GRAD_BY_MATMUL = not BLAS_SLOWER
ONEDNN_LINEAR = BLAS_SLOWER and onednn_matmul_available()
ONEDNN_MIN_ROWS = 32  # below, a call's fixed cost outweighs oneDNN's faster kernel


@contextlib.contextmanager
def blas_matmuls() -> Iterator[None]:
    """Linear layers by torch's BLAS within: torch's FLOP counter does not see oneDNN's op."""
    global ONEDNN_LINEAR
    was, ONEDNN_LINEAR = ONEDNN_LINEAR, False
    try:
        yield
    finally:
        ONEDNN_LINEAR = was


def onednn_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """x @ weight.T + bias by oneDNN, no autograd (any strides)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
           ) -> torch.Tensor:
    """``F.linear``, by oneDNN's matmul forward and backward where ``ONEDNN_LINEAR`` says it is
    the faster (fp32 on a CPU, enough rows), else by torch's BLAS."""
    if (ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and x.numel() >= ONEDNN_MIN_ROWS * x.shape[-1]
            and not torch.is_autocast_enabled("cpu")):
        return OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class OneDNNLinear(torch.autograd.Function):
    """``F.linear`` whose three matmuls (output, input and weight gradients) are oneDNN's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return onednn_matmul(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        g_x = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = onednn_matmul(grad, weight.t())
        if ctx.needs_input_grad[1]:
            g_w = onednn_matmul(g.t(), x.reshape(-1, x.shape[-1]).t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            g_b = g.sum(0)
        return g_x, g_w, g_b

# Tap of the 5x5 kernel used by each output phase (row r of a stride-2 upsampling) at each of
# the 3 input offsets; 5 is a zero tap.
PHASE_TAPS = ((4, 2, 0), (5, 3, 1))


def is_stride2_conv3x3(m: nn.Module) -> bool:
    """A 3x3 stride-2 conv with padding 1 and a bias: the encoder's middle layers."""
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (2, 2)
            and m.padding == (1, 1) and m.dilation == (1, 1) and m.groups == 1
            and m.bias is not None)


def is_stride2_transposed_conv3x3(m: nn.Module) -> bool:
    """A 3x3 stride-2 transposed conv (padding 1, output padding 1): the decoder's middle."""
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (3, 3)
            and m.stride == (2, 2) and m.padding == (1, 1) and m.output_padding == (1, 1)
            and m.dilation == (1, 1) and m.groups == 1 and m.bias is not None)


def is_subpixel_layer(m: nn.Module) -> bool:
    """A 5x5 stride-2 transposed conv (padding 2, output padding 1): the decoder's last."""
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (5, 5)
            and m.stride == (2, 2) and m.padding == (2, 2) and m.output_padding == (1, 1)
            and m.dilation == (1, 1) and m.groups == 1 and m.bias is not None)


def conv3x3_stride2(x: torch.Tensor, layer: nn.Conv2d) -> torch.Tensor:
    """``layer(x)`` with the weight gradient as one patch matmul (see :class:`Stride2Conv3x3`)."""
    return in_autocast_dtype(Stride2Conv3x3.apply, x, layer)


def transposed_conv3x3(x: torch.Tensor, layer: nn.ConvTranspose2d) -> torch.Tensor:
    """``layer(x)`` with the backward of :class:`Stride2TransposedConv3x3`."""
    return in_autocast_dtype(Stride2TransposedConv3x3.apply, x, layer)


def subpixel_conv5x5(x: torch.Tensor, layer: nn.ConvTranspose2d) -> torch.Tensor:
    """``layer(x)`` as a 3x3 conv and a pixel shuffle (see :class:`SubPixelLastLayer`)."""
    return in_autocast_dtype(SubPixelLastLayer.apply, x, layer)


def in_autocast_dtype(fn: Callable[..., torch.Tensor], x: torch.Tensor, layer: nn.Module
                      ) -> torch.Tensor:
    """``fn(x, weight, bias)`` of ``layer``; under autocast (``--amp``) with all three cast to
    its dtype and autocast off inside, so that the backward runs in that dtype too (the casts
    carry the gradients back to the fp32 parameters)."""
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return fn(x, layer.weight, layer.bias)
    dtype = torch.get_autocast_dtype(device)
    with torch.autocast(device, enabled=False):
        return fn(x.to(dtype), layer.weight.to(dtype), layer.bias.to(dtype))


class SubPixelLastLayer(torch.autograd.Function):
    """A 5x5 stride-2 transposed conv (padding 2, output padding 1) to 3 channels, computed
    exactly as a 3x3 conv to 4x3 channels (one per output phase) followed by a pixel shuffle,
    which oneDNN runs faster than the transposed conv. The channels are ordered (phase,
    colour) and zero-padded to a multiple of 8, the width of oneDNN's AVX2 kernels; the shuffle
    is then one channels-last copy. The backward is the transposed conv's own."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        taps = torch.tensor(PHASE_TAPS, device=weight.device)
        w = F.pad(weight, (0, 1, 0, 1))[:, :, taps[:, None, :, None], taps[None, :, None, :]]
        w = w.permute(2, 3, 1, 0, 4, 5).reshape(-1, weight.shape[0], 3, 3)  # (ry rx o, i, 3, 3)
        c = w.shape[0]
        pad = -c % 8
        w = F.pad(w, (0, 0, 0, 0, 0, 0, 0, pad)).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, w, F.pad(bias.repeat(4), (0, pad)), padding=1)
        # the pixel shuffle: channels-last (n h w ry rx o) copied into (n h ry w rx o)
        n, _, h, w_ = y.shape
        y = y.permute(0, 2, 3, 1)[..., :c].reshape(n, h, w_, 2, 2, -1).transpose(2, 3)
        return y.reshape(n, 2 * h, 2 * w_, -1).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[1]], [2, 2], [2, 2], [1, 1], True, [1, 1], 1,
            list(ctx.needs_input_grad))


def stride2_patches(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The h x w stride-2 3x3 windows of ``t`` (N, C, H, W) zero-padded by one on each side, as
    rows (N h w, 3 3 C) in channels-last order: for a weight gradient's matmul.

    Where H, W = 2h, 2w (every use in SLAC) no window reads the bottom or right padding, so the
    rows are copied straight from ``t``, with zeros only for the first row's and column's taps
    that fall on the top and left padding: no padded copy of ``t`` is made."""
    n, c, big_h, big_w = t.shape
    src = t.contiguous(memory_format=torch.channels_last)
    direct = (big_h, big_w) == (2 * h, 2 * w)
    if not direct:
        src = F.pad(src, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
    s_n, s_c, s_h, s_w = src.stride()

    def windows(rows: int, cols: int, ky: int, kx: int, first_row: int, first_col: int):
        # rows x cols windows of ky x kx taps, the first window's first tap at src's
        # (first_row, first_col)
        return src.as_strided((n, rows, cols, ky, kx, c), (s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c),
                              src.storage_offset() + first_row * s_h + first_col * s_w)

    if not direct:
        return windows(h, w, 3, 3, 0, 0).reshape(n * h * w, -1)
    out = t.new_empty(n, h, w, 3, 3, c)
    out[:, 0, :, 0].zero_()  # the first row's top taps and the first column's left taps: padding
    out[:, :, 0, :, 0].zero_()
    out[:, 1:, 1:] = windows(h - 1, w - 1, 3, 3, 1, 1)
    out[:, :1, 1:, 1:] = windows(1, w - 1, 2, 3, 0, 1)
    out[:, 1:, :1, :, 1:] = windows(h - 1, 1, 3, 2, 1, 0)
    out[:, :1, :1, 1:, 1:] = windows(1, 1, 2, 2, 0, 0)
    return out.view(n * h * w, -1)


class Stride2TransposedConv3x3(torch.autograd.Function):
    """A 3x3 stride-2 transposed conv (padding 1, output padding 1) whose backward takes the
    input's gradient as the strided conv it is (oneDNN's forward kernel) and the weight's as one
    matmul of the input with stride-2 3x3 patches of the output gradient, both channels-last
    (or, where ``WEIGHT_GRAD_BY_MATMUL`` is off, oneDNN's own weight gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv_transpose2d(x, weight, bias, 2, 1, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        g_x = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = F.conv2d(grad, weight, None, 2, 1)
        if not WEIGHT_GRAD_BY_MATMUL:
            _, g_w, g_b = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[1]], [2, 2], [1, 1], [1, 1], True, [1, 1], 1,
                [False, *ctx.needs_input_grad[1:]])
        elif ctx.needs_input_grad[1]:
            # dW[i, o, ky, kx] = sum_{n, r, c} x[n, i, r, c] grad[n, o, 2r - 1 + ky, 2c - 1 + kx]
            n, c_in, h, w = x.shape
            patches = stride2_patches(grad, h, w)
            g_w = x.permute(0, 2, 3, 1).reshape(-1, c_in).T @ patches
            g_w = g_w.view(c_in, 3, 3, -1).permute(0, 3, 1, 2)  # channels-last, as the weight
        if ctx.needs_input_grad[2] and WEIGHT_GRAD_BY_MATMUL:
            g_b = grad.sum((0, 2, 3))
        return g_x, g_w, g_b


class Stride2Conv3x3(torch.autograd.Function):
    """A 3x3 stride-2 conv (padding 1) whose weight gradient is one matmul of the output
    gradient with stride-2 3x3 patches of the input, channels-last (for small maps, where
    oneDNN's own weight gradient is slow); the input's gradient stays oneDNN's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, 2, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        g_x = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            # dW[o, i, ky, kx] = sum_{n, r, c} grad[n, o, r, c] x[n, i, 2r - 1 + ky, 2c - 1 + kx]
            patches = stride2_patches(x, *grad.shape[2:])
            g_w = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1]).T @ patches
            g_w = g_w.view(-1, 3, 3, x.shape[1]).permute(0, 3, 1, 2)  # channels-last, as weight
        if ctx.needs_input_grad[2]:
            g_b = grad.sum((0, 2, 3))
        return g_x, g_w, g_b
