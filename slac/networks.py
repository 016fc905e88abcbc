"""Network pieces of SLAC (Appendix B): encoder, decoder, Gaussian MLPs, actor and critics."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2


def noise_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, from ``generator`` (default: torch's global one).
    The agent's two update streams each draw from their own, so they may run concurrently."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def mlp(inp: int, out: int, hidden: int, act: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units, then a linear output."""
    a = (lambda: nn.LeakyReLU(LEAK)) if act is nn.LeakyReLU else act
    return nn.Sequential(
        nn.Linear(inp, hidden), a(), nn.Linear(hidden, hidden), a(), nn.Linear(hidden, out)
    )


def _clip_grad(x: torch.Tensor, bound: float = 10.0) -> torch.Tensor:
    # Appendix B: the pre-softplus std is gradient-clipped element-wise to [-10, 10].
    if x.requires_grad:
        x.register_hook(lambda g: g.clamp(-bound, bound))
    return x


class Gaussian(nn.Module):
    """MLP -> diagonal Gaussian: mean linear, std = softplus(.) (Appendix B's Gaussian layer)."""

    def __init__(self, inp: int, out: int, hidden: int):
        super().__init__()
        self.net = mlp(inp, 2 * out, hidden)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(torch.cat(xs, -1) if len(xs) > 1 else xs[0])
        mean, pre_std = h.chunk(2, -1)
        return mean, F.softplus(_clip_grad(pre_std)) + 1e-5


class Encoder(nn.Module):
    """64x64x3 -> 256: convs 32 5x5, 64 3x3, 128 3x3, 256 3x3 (stride 2), 256 4x4 (valid).

    ``width`` is the first layer's channels (32 in the paper); the others scale with it.
    """

    def __init__(self, out: int = 256, width: int = 32):
        super().__init__()
        w = width
        act = lambda: nn.LeakyReLU(LEAK, inplace=True)  # noqa: E731 - conv outputs are scratch
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 5, 2, 2), act(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), act(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), act(),
            nn.Conv2d(4 * w, 8 * w, 3, 2, 1), act(),
            nn.Conv2d(8 * w, out, 4, 1, 0), act(),
        )
        self.to(memory_format=torch.channels_last)  # as its input: no weight reorder per call

    CHUNK = 72  # frames per pass: 8 sequences of 9 stay in cache (2x faster here, same result)
    amp = False  # bfloat16 autocast (--amp)
    SMALL_MAP = 16  # inputs up to this size take _Stride2Conv3x3's backward

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> features (..., out)."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2)  # channels-last view
        with torch.autocast(x.device.type, torch.bfloat16, enabled=self.amp):
            chunks = [self._forward(c.float().div_(255.0)) for c in x.split(self.CHUNK)]
        return torch.cat(chunks).float().reshape(*lead, -1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        *convs, last, act = self.net
        fast = not torch.is_autocast_enabled(x.device.type)
        for layer in convs:
            if fast and x.shape[-1] <= self.SMALL_MAP and _is_stride2_conv3x3(layer):
                x = _Stride2Conv3x3.apply(x, layer.weight, layer.bias)
            else:
                x = layer(x)
        # The last conv covers its whole 4x4 input: a matmul on the same parameters, read in
        # channels-last order (views, no copies); exact, and ~2.5x faster than the conv here.
        w = last.weight.permute(0, 2, 3, 1).reshape(last.out_channels, -1)
        return act(F.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), w, last.bias))


# Tap of the 5x5 kernel used by each output phase (row r of a stride-2 upsampling) at each of
# the 3 input offsets; 5 is a zero tap.
_PHASE_TAPS = ((4, 2, 0), (5, 3, 1))


class _SubPixelLastLayer(torch.autograd.Function):
    """The decoder's last layer, a 5x5 stride-2 transposed conv (padding 2, output padding 1) to
    3 channels, computed exactly as a 3x3 conv to 4x3 channels (one per output phase) followed by
    a pixel shuffle: oneDNN runs that ~2x faster here than a transposed conv to 3 channels. The
    12 channels are ordered (phase, colour), so the shuffle is one copy. The backward is the
    transposed conv's own, which is the faster one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        taps = torch.tensor(_PHASE_TAPS, device=weight.device)
        w = F.pad(weight, (0, 1, 0, 1))[:, :, taps[:, None, :, None], taps[None, :, None, :]]
        w = w.permute(2, 3, 1, 0, 4, 5).reshape(-1, weight.shape[0], 3, 3)  # (ry rx o, i, 3, 3)
        c = w.shape[0]  # 12 channels, zero-padded to a multiple of 8: oneDNN's AVX2 kernels
        pad = -c % 8    # ran the conv ~25% faster with 16 output channels than with 12 here
        w = F.pad(w, (0, 0, 0, 0, 0, 0, 0, pad)).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, w, F.pad(bias.repeat(4), (0, pad)), padding=1)
        # The pixel shuffle, as one copy of the channels-last output (n h w ry rx o) into
        # (n h ry w rx o): a channels-last image (2-8x faster here than F.pixel_shuffle)
        n, _, h, w_ = y.shape
        y = y.permute(0, 2, 3, 1)[..., :c].reshape(n, h, w_, 2, 2, -1).transpose(2, 3)
        return y.reshape(n, 2 * h, 2 * w_, -1).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[1]], [2, 2], [2, 2], [1, 1], True, [1, 1], 1,
            list(ctx.needs_input_grad))


def _stride2_patches(t: torch.Tensor, pad: tuple[int, int, int, int], h: int, w: int):
    """The h x w stride-2 3x3 windows of ``t`` (N, C, H, W) padded by ``pad`` (F.pad's order),
    as rows (N h w, 3 3 C) in channels-last order: one copy, for a weight gradient's matmul."""
    padded = F.pad(t, pad).contiguous(memory_format=torch.channels_last)
    s_n, s_c, s_h, s_w = padded.stride()
    windows = padded.as_strided((t.shape[0], h, w, 3, 3, t.shape[1]),
                                (s_n, 2 * s_h, 2 * s_w, s_h, s_w, s_c))
    return windows.reshape(t.shape[0] * h * w, -1)


class _Stride2TransposedConv3x3(torch.autograd.Function):
    """A 3x3 stride-2 transposed conv (padding 1, output padding 1), the decoder's middle layers,
    with a faster exact backward: the input's gradient as the strided conv it is (oneDNN's
    forward kernel), and the weight's as one matmul of the input with stride-2 3x3 patches of
    the output gradient, read in channels-last order (~20% less time than oneDNN's own
    backward over the three layers here, 1 thread)."""

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
        if ctx.needs_input_grad[1]:
            # dW[i, o, ky, kx] = sum_{n, r, c} x[n, i, r, c] grad[n, o, 2r - 1 + ky, 2c - 1 + kx]
            n, c_in, h, w = x.shape
            patches = _stride2_patches(grad, (1, 0, 1, 0), h, w)
            g_w = x.permute(0, 2, 3, 1).reshape(-1, c_in).T @ patches
            g_w = g_w.view(c_in, 3, 3, -1).permute(0, 3, 1, 2)  # channels-last, as the weight
        if ctx.needs_input_grad[2]:
            g_b = grad.sum((0, 2, 3))
        return g_x, g_w, g_b


class _Stride2Conv3x3(torch.autograd.Function):
    """The encoder's 3x3 stride-2 convs (padding 1) on small maps, with the weight's gradient as
    one matmul of the output gradient with stride-2 3x3 patches of the input, read in
    channels-last order (oneDNN's own weight gradient took ~2x as long on 16x16 and 8x8 inputs
    here, 1 thread); the input's gradient stays oneDNN's."""

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
            patches = _stride2_patches(x, (1, 1, 1, 1), *grad.shape[2:])
            g_w = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1]).T @ patches
            g_w = g_w.view(-1, 3, 3, x.shape[1]).permute(0, 3, 1, 2)  # channels-last, as weight
        if ctx.needs_input_grad[2]:
            g_b = grad.sum((0, 2, 3))
        return g_x, g_w, g_b


def _is_stride2_conv3x3(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (2, 2)
            and m.padding == (1, 1) and m.dilation == (1, 1) and m.groups == 1
            and m.bias is not None)


def _is_stride2_3x3_layer(m: nn.Module) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (3, 3)
            and m.stride == (2, 2) and m.padding == (1, 1) and m.output_padding == (1, 1)
            and m.dilation == (1, 1) and m.groups == 1 and m.bias is not None)


def _is_subpixel_layer(m: nn.Module) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (5, 5)
            and m.stride == (2, 2) and m.padding == (2, 2) and m.output_padding == (1, 1)
            and m.dilation == (1, 1) and m.groups == 1 and m.bias is not None)


class Decoder(nn.Module):
    """z -> mean image: transposed convs 256 4x4 (valid), 128 3x3, 64 3x3, 32 3x3, 3 5x5
    (for ``width`` 32, the paper's; the others scale with it)."""

    def __init__(self, inp: int, width: int = 32):
        super().__init__()
        w = width
        act = lambda: nn.LeakyReLU(LEAK, inplace=True)  # noqa: E731 - conv outputs are scratch
        self.net = nn.Sequential(
            nn.ConvTranspose2d(inp, 8 * w, 4, 1, 0), act(),
            nn.ConvTranspose2d(8 * w, 4 * w, 3, 2, 1, 1), act(),
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, 1), act(),
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, 1), act(),
            nn.ConvTranspose2d(w, 3, 5, 2, 2, 1),
        )
        # Its input is (N, C, 1, 1), whose layout is ambiguous, so channels-last weights are what
        # make oneDNN run every layer channels-last (NCHW was up to 3x slower per layer here).
        self.to(memory_format=torch.channels_last)

    CHUNK = 72  # as the encoder's
    amp = False  # bfloat16 autocast (--amp)
    plain = False  # the plain layers, without the rewrites below (slac bench counts FLOPs so:
    # the sub-pixel rewrite of the last layer also multiplies zero taps, not work of the model)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., inp) -> mean image (..., 3, 64, 64) in [0, 1] units."""
        lead = z.shape[:-1]
        with torch.autocast(z.device.type, torch.bfloat16, enabled=self.amp):
            x = [self._forward(c) for c in z.reshape(-1, z.shape[-1]).split(self.CHUNK)]
        x = torch.cat(x).float()  # the likelihood is computed in fp32
        return x.reshape(*lead, *x.shape[1:])

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        first, *rest = self.net
        # The first transposed conv maps a 1x1 input to 4x4: a matmul on the same parameters
        # (views in channels-last order), giving a channels-last map; exact, ~2.5x faster here.
        kh, kw = first.kernel_size
        w = first.weight.permute(0, 2, 3, 1).reshape(first.in_channels, -1)
        x = torch.addmm(first.bias.repeat(kh * kw), z, w)
        x = x.view(-1, kh, kw, first.out_channels).permute(0, 3, 1, 2)
        *middle, last = rest
        fast = not (self.plain or torch.is_autocast_enabled(x.device.type))
        for layer in middle:
            if fast and _is_stride2_3x3_layer(layer):
                x = _Stride2TransposedConv3x3.apply(x, layer.weight, layer.bias)
            else:
                x = layer(x)
        if fast and _is_subpixel_layer(last):
            return _SubPixelLastLayer.apply(x, last.weight, last.bias)
        return last(x)


def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) for u ~ N(mean, std): Gaussian log density minus log|d tanh/du|."""
    normal = -0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))  # log(1 - tanh(u)^2), stably
    return (normal - log_det).sum(-1)


class Actor(nn.Module):
    """pi(a_t | x_{t-L+1:t}, a_{t-L+1:t-1}): encoded frames and past actions -> tanh Gaussian."""

    def __init__(self, feature_dim: int, action_dim: int, history: int, hidden: int,
                 std_scale: float = 1.0):
        super().__init__()
        self.history = history
        self.std_scale = std_scale
        self.net = mlp(history * feature_dim + (history - 1) * action_dim, 2 * action_dim, hidden,
                       act=nn.ReLU)

    def forward(
        self, features: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, L, F), actions (B, L-1, A) -> pre-tanh mean and std."""
        h = torch.cat([features.flatten(1), actions.flatten(1)], -1)
        mean, log_std = self.net(h).chunk(2, -1)
        return mean, log_std.clamp(-20.0, 2.0).exp() * self.std_scale

    def sample(
        self, features: torch.Tensor, actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in [-1, 1] and its log-probability."""
        mean, std = self(features, actions)
        u = mean + std * noise_like(mean, generator)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, std)


class Critic(nn.Module):
    """Twin soft Q-functions Q_i(z, a), each an MLP 2x256."""

    def __init__(self, latent_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.q1 = mlp(latent_dim + action_dim, 1, hidden, act=nn.ReLU)
        self.q2 = mlp(latent_dim + action_dim, 1, hidden, act=nn.ReLU)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        za = torch.cat([z, a], -1)
        return self.q1(za).squeeze(-1), self.q2(za).squeeze(-1)
