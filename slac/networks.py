"""Network pieces of SLAC (Appendix B): encoder, decoder, Gaussian MLPs, actor and critics."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from slac import kernels, unroll

LEAK = 0.2
UNROLL = True  # the filter's MLPs by slac.unroll (read at each pass, so A/Bs can set it)
Stage = Callable[[torch.Tensor], torch.Tensor]


def noise_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, from ``generator`` (default: torch's global one).
    The agent's two update streams each draw from their own, so they may run concurrently."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class Linear(nn.Linear):
    """``nn.Linear`` computed by :func:`slac.kernels.linear` (oneDNN's matmul where faster)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.linear(x, self.weight, self.bias)


def mlp(inp: int, out: int, hidden: int, act: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units, then a linear output."""
    a = (lambda: nn.LeakyReLU(LEAK)) if act is nn.LeakyReLU else act
    return nn.Sequential(Linear(inp, hidden), a(), Linear(hidden, hidden), a(),
                         Linear(hidden, out))


STD_FLOOR = 1e-5  # added to the softplus
STD_GRAD_CLIP = 10.0


def _clip_grad(x: torch.Tensor, bound: float = STD_GRAD_CLIP) -> torch.Tensor:
    # Appendix B: the pre-softplus std is gradient-clipped element-wise to [-10, 10].
    if x.requires_grad:
        x.register_hook(lambda g: g if g is None else g.clamp(-bound, bound))  # None: unused
    return x


class Gaussian(nn.Module):
    """MLP -> diagonal Gaussian: mean linear, std = softplus(.) (Appendix B's Gaussian layer).

    With ``std`` given, the MLP outputs only the mean and the std is that constant: 0 makes a
    deterministic layer, 1 a unit-variance one (the ablation models' transitions).
    """

    def __init__(self, inp: int, out: int, hidden: int, std: float | None = None):
        super().__init__()
        self.std = std
        self.net = mlp(inp, out if std is not None else 2 * out, hidden)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.net(torch.cat(xs, -1) if len(xs) > 1 else xs[0]))

    def unrolled(self) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        """This layer for the steps of one loop (one pass): the same values, its weight
        gradients summed over the steps in one matmul each (:mod:`slac.unroll`)."""
        if not (UNROLL and torch.is_grad_enabled() and self.net[0].weight.requires_grad):
            return self
        if self.std is not None:
            net = unroll.Unrolled(self.net)
            return lambda *xs: self.head(net(torch.cat(xs, -1)))
        net = unroll.Unrolled(self.net, unroll.Head(STD_FLOOR, STD_GRAD_CLIP))
        return lambda *xs: net(torch.cat(xs, -1))

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP's output h as (mean, std)."""
        if self.std is not None:
            return h, torch.full_like(h, self.std)
        mean, pre_std = h.chunk(2, -1)
        return mean, F.softplus(_clip_grad(pre_std)) + STD_FLOOR


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

    CHUNK = 72  # frames per pass: 8 sequences of 9 stay in cache (same result)
    amp = False  # bfloat16 autocast (--amp)
    plain = False  # the stock layers, without the rewrites of slac.kernels (for A/Bs)
    SMALL_MAP = 16  # inputs up to this size take kernels.conv3x3_stride2's backward, where the
    # weight gradient is a matmul (kernels.WEIGHT_GRAD_BY_MATMUL)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> features (..., out)."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2)  # channels-last view
        with torch.autocast(x.device.type, torch.bfloat16, enabled=self.amp):
            chunks = [self._forward(c.float().div_(255.0)) for c in x.split(self.CHUNK)]
        return torch.cat(chunks).float().reshape(*lead, -1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, step in self.stages(not self.plain, x.shape[-1]):
            x = step(x)
        return x

    def stages(self, fast: bool = True, size: int = 64) -> list[tuple[str, Stage]]:
        """The forward pass on ``size`` x ``size`` inputs as named steps (a layer and its
        activation), each a function of the previous one's output; ``fast`` takes the rewrites
        of :mod:`slac.kernels` for the 3x3 convs, else the stock layers (the last conv is a
        matmul either way). ``slac bench --layers`` times each."""
        *convs, last, act = self.net
        out = []
        for conv, _ in zip(convs[::2], convs[1::2], strict=True):
            name = f"encoder {conv_name(conv)}, {size}x{size}"
            if (fast and size <= self.SMALL_MAP and kernels.WEIGHT_GRAD_BY_MATMUL
                    and kernels.is_stride2_conv3x3(conv)):
                out.append((name, lambda x, c=conv: act(kernels.conv3x3_stride2(x, c))))
            else:
                out.append((name, lambda x, c=conv: act(c(x))))
            size = (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        out.append((f"encoder {conv_name(last)}, {size}x{size} (a matmul)",
                    lambda x: act(self._last(x, last))))
        return out

    @staticmethod
    def _last(x: torch.Tensor, last: nn.Conv2d) -> torch.Tensor:
        # The last conv covers its whole 4x4 input: a matmul on the same parameters, read in
        # channels-last order (views, no copies); exact, and faster than the conv.
        w = last.weight.permute(0, 2, 3, 1).reshape(last.out_channels, -1)
        return kernels.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), w, last.bias)


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
        # make oneDNN run every layer channels-last, its faster layout.
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
        for _, step in self.stages(not self.plain):
            z = step(z)
        return z

    def stages(self, fast: bool = True) -> list[tuple[str, Stage]]:
        """The forward pass as named steps (a layer and its activation), each a function of the
        previous one's output; ``fast`` takes the rewrites of :mod:`slac.kernels`, else the
        stock layers (the first is a matmul either way). ``slac bench --layers`` times each."""
        first, act, *rest = self.net
        out = [(f"decoder {conv_name(first)}, 1x1 (a matmul)",
                lambda z, a=act: self._first(z, first, a))]
        size = first.kernel_size[0]
        for layer, act in zip(rest[::2], [*rest[1::2], None], strict=True):
            name = f"decoder {conv_name(layer)}, {size}x{size}"
            size = 2 * size
            if fast and kernels.is_stride2_transposed_conv3x3(layer):
                out.append((name, lambda x, m=layer, a=act: a(kernels.transposed_conv3x3(x, m))))
            elif fast and kernels.is_subpixel_layer(layer):
                out.append((name + " (sub-pixel)",
                            lambda x, m=layer: kernels.subpixel_conv5x5(x, m)))
            else:
                out.append((name, lambda x, m=layer, a=act: a(m(x)) if a is not None else m(x)))
        return out

    @staticmethod
    def _first(z: torch.Tensor, first: nn.ConvTranspose2d, act: nn.Module) -> torch.Tensor:
        # The first transposed conv maps a 1x1 input to 4x4: a matmul on the same parameters
        # (views in channels-last order), giving a channels-last map; exact and faster. The
        # in-place activation goes on the matmul's output, not on the 4-D view of it: autograd
        # would give a view's backward a gradient copied to NCHW, against the map's layout.
        kh, kw = first.kernel_size
        w = first.weight.permute(0, 2, 3, 1).reshape(first.in_channels, -1)
        x = act(kernels.linear(z, w.t(), first.bias.repeat(kh * kw)))
        return x.view(-1, kh, kw, first.out_channels).permute(0, 3, 1, 2)


def conv_name(m: nn.Conv2d | nn.ConvTranspose2d) -> str:
    """E.g. "conv 5x5/2 3->32" or "transposed 3x3/2 256->128"."""
    kind = "transposed" if isinstance(m, nn.ConvTranspose2d) else "conv"
    k, s = m.kernel_size[0], m.stride[0]
    return f"{kind} {k}x{k}/{s} {m.in_channels}->{m.out_channels}"


def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) for u ~ N(mean, std): Gaussian log density minus log|d tanh/du|."""
    normal = -0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))  # log(1 - tanh(u)^2), stably
    return (normal - log_det).sum(-1)


def flat(*inputs: torch.Tensor) -> torch.Tensor:
    """Inputs (B, ...) each flattened and concatenated: (B, sum of their sizes)."""
    return torch.cat([x.flatten(1) for x in inputs], -1) if len(inputs) > 1 else \
        inputs[0].flatten(1)


class Actor(nn.Module):
    """pi(a_t | input) -> tanh Gaussian. The paper's input is the history: encoded frames
    x_{t-L+1:t} (B, L, F) and past actions a_{t-L+1:t-1} (B, L-1, A); the ablation's a latent
    sample z_t (B, Z). Inputs are flattened and concatenated; ``inp`` is their total size."""

    def __init__(self, inp: int, action_dim: int, hidden: int, std_scale: float = 1.0):
        super().__init__()
        self.std_scale = std_scale
        self.net = mlp(inp, 2 * action_dim, hidden, act=nn.ReLU)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's inputs -> pre-tanh mean and std."""
        mean, log_std = self.net(flat(*inputs)).chunk(2, -1)
        return mean, log_std.clamp(-20.0, 2.0).exp() * self.std_scale

    def sample(
        self, *inputs: torch.Tensor, generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action in [-1, 1] and its log-probability."""
        mean, std = self(*inputs)
        u = mean + std * noise_like(mean, generator)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, std)


class Critic(nn.Module):
    """Twin soft Q-functions Q_i(s, a), each an MLP 2x256. The paper's s is a latent sample
    z_t; the ablation's the history (encoded frames and past actions), flattened like the
    actor's; ``inp`` is its size."""

    def __init__(self, inp: int, action_dim: int, hidden: int):
        super().__init__()
        self.q1 = mlp(inp + action_dim, 1, hidden, act=nn.ReLU)
        self.q2 = mlp(inp + action_dim, 1, hidden, act=nn.ReLU)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state's inputs, then the action a (B, A) -> Q_1, Q_2 (B,)."""
        sa = flat(*inputs)
        return self.q1(sa).squeeze(-1), self.q2(sa).squeeze(-1)
