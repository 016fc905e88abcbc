"""The fast paths (chunked, in-place activations, channels-last weights and views, the encoder's
last conv and the decoder's first transposed conv as matmuls, the decoder's last one as a
sub-pixel conv) compute exactly what a plain functional computation of the same layers computes:
outputs and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slac import kernels
from slac.networks import LEAK, Decoder, Encoder


@pytest.fixture(params=[True, False], ids=["weight-grad-matmul", "weight-grad-onednn"])
def weight_grad(request, monkeypatch):
    """Both ways the 3x3 stride-2 layers take their weight gradient (the CPU decides which)."""
    monkeypatch.setattr(kernels, "WEIGHT_GRAD_BY_MATMUL", request.param)
    return request.param


def plain_encoder(enc: Encoder, frames: torch.Tensor) -> torch.Tensor:
    x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).contiguous().float() / 255
    for layer in enc.net:
        if isinstance(layer, nn.Conv2d):
            x = F.leaky_relu(F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding),
                             LEAK)
    return x.reshape(*frames.shape[:-3], -1)


def plain_decoder(dec: Decoder, z: torch.Tensor) -> torch.Tensor:
    convs = [m for m in dec.net if isinstance(m, nn.ConvTranspose2d)]
    x = z.reshape(-1, z.shape[-1], 1, 1)
    for i, c in enumerate(convs):
        x = F.conv_transpose2d(x, c.weight, c.bias, c.stride, c.padding, c.output_padding)
        if i < len(convs) - 1:
            x = F.leaky_relu(x, LEAK)
    return x.reshape(*z.shape[:-1], *x.shape[1:])


def grads(module, loss):
    module.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in module.parameters()]


def test_chunked_encoder_matches_plain_computation(weight_grad):
    torch.manual_seed(0)
    enc = Encoder()
    frames = torch.randint(0, 256, (20, 9, 64, 64, 3), dtype=torch.uint8)  # 180 > one chunk
    fast, slow = enc(frames), plain_encoder(enc, frames)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    w = torch.randn_like(fast)
    for g_fast, g_slow in zip(grads(enc, (enc(frames) * w).sum()),
                              grads(enc, (plain_encoder(enc, frames) * w).sum()), strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-3, atol=1e-4)


def test_chunked_decoder_matches_plain_computation(weight_grad):
    torch.manual_seed(0)
    dec = Decoder(288)
    z = torch.randn(20, 9, 288)
    torch.testing.assert_close(dec(z), plain_decoder(dec, z), rtol=1e-4, atol=1e-5)
    target = torch.rand(20, 9, 3, 64, 64)
    for g_fast, g_slow in zip(grads(dec, ((dec(z) - target) ** 2).sum()),
                              grads(dec, ((plain_decoder(dec, z) - target) ** 2).sum()),
                              strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-3, atol=1e-3)


def test_amp_stays_close_to_fp32_and_returns_fp32():
    """--amp (bfloat16 autocast in the convolutions) changes the arithmetic, not the function."""
    torch.manual_seed(0)
    enc, dec = Encoder(width=8), Decoder(288, width=8)
    frames = torch.randint(0, 256, (2, 9, 64, 64, 3), dtype=torch.uint8)
    z = torch.randn(2, 9, 288)
    want_f, want_x = enc(frames), dec(z)
    enc.amp = dec.amp = True
    got_f, got_x = enc(frames), dec(z)
    assert got_f.dtype == got_x.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 per operation); through five
    # layers the largest error measured was 0.65% of the output's scale (seeds 0-4, AVX-512):
    # allow about twice that, so a layer left in fp32 by mistake or a wrong cast shows
    for got, want in ((got_f, want_f), (got_x, want_x)):
        scale = want.abs().max()
        torch.testing.assert_close(got, want, rtol=0, atol=float(0.015 * scale))
        assert (got - want).abs().max() > 1e-3 * scale  # it did run in bfloat16 (float16
        # rounds 8x finer: its error stayed below 0.1% of the scale)


def test_amp_rewrites_compute_what_the_stock_layers_do_in_bfloat16(weight_grad):
    """Under --amp the rewrites of slac.kernels run forward and backward in bfloat16 (inputs,
    weights and biases cast, gradients back in fp32) and agree with the stock layers under
    the same autocast; the largest differences measured were 0.27% of an output's scale and
    0.14% of a gradient's (seeds 0-4), from the order of bfloat16 roundings."""
    torch.manual_seed(0)
    enc, dec = Encoder(width=8), Decoder(288, width=8)
    enc.amp = dec.amp = True
    frames = torch.randint(0, 256, (2, 9, 64, 64, 3), dtype=torch.uint8)
    z = torch.randn(2, 9, 288)
    t_f, t_x = torch.randn(2, 9, 256), torch.rand(2, 9, 3, 64, 64)

    def run(stock: bool):
        if stock:
            with torch.autocast("cpu", torch.bfloat16):
                f, x = plain_encoder(enc, frames).float(), plain_decoder(dec, z).float()
        else:
            f, x = enc(frames), dec(z)  # each in its own autocast
        return f, x, grads(enc, (f * t_f).sum()) + grads(dec, ((x - t_x) ** 2).sum())

    fast, stock = run(False), run(True)
    for got, want in zip(fast[:2], stock[:2], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0.01 * float(want.abs().max()))
    for got, want in zip(fast[2], stock[2], strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0.01 * float(want.abs().max()))


def test_compiled_networks_compute_the_same():
    """--compile: same outputs, same parameter names (checkpoints are interchangeable)."""
    torch.manual_seed(0)
    enc = Encoder(width=4)
    frames = torch.randint(0, 256, (2, 9, 64, 64, 3), dtype=torch.uint8)
    want, names = enc(frames), list(enc.state_dict())
    enc.compile()
    torch.testing.assert_close(enc(frames), want, rtol=1e-4, atol=1e-5)
    assert list(enc.state_dict()) == names


def test_onednn_linear_is_f_linear(monkeypatch):
    """Linear layers by oneDNN's matmul (where the CPU makes it the faster): F.linear's
    values and gradients, for 2-D and 3-D inputs; and F.linear itself below its row bound."""
    if not kernels.onednn_matmul_available():
        pytest.skip("torch built without oneDNN")
    monkeypatch.setattr(kernels, "ONEDNN_LINEAR", True)
    torch.manual_seed(0)
    for shape in ((40, 24), (4, 9, 24)):
        x = torch.randn(*shape, requires_grad=True)
        w = torch.randn(16, 24, requires_grad=True)
        b = torch.randn(16, requires_grad=True)
        g = torch.randn(*shape[:-1], 16)
        ours = kernels.linear(x, w, b)
        assert ours.grad_fn.name().endswith("OneDNNLinearBackward")
        theirs = F.linear(x, w, b)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        for a, c in zip(torch.autograd.grad(ours, (x, w, b), g),
                        torch.autograd.grad(theirs, (x, w, b), g), strict=True):
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-4)
    small = kernels.linear(torch.randn(4, 24, requires_grad=True), w, b)
    assert "OneDNN" not in small.grad_fn.name()


@pytest.mark.parametrize("size", [(16, 16), (8, 12), (7, 9)])
def test_stride2_patches_are_the_padded_unfold(size):
    """The weight gradients' patch rows equal F.unfold's stride-2 3x3 windows of the input padded
    by one, reordered (tap row, tap column, channel): copied straight from the input where it is
    2h x 2w, through a padded copy otherwise (the odd size)."""
    t = torch.randn(3, 5, *size).contiguous(memory_format=torch.channels_last)
    h, w = (size[0] + 1) // 2, (size[1] + 1) // 2
    ref = F.unfold(t, 3, padding=1, stride=2)  # (N, C 3 3, h w)
    ref = ref.view(3, 5, 3, 3, h * w).permute(0, 4, 2, 3, 1).reshape(3 * h * w, -1)
    assert torch.equal(kernels.stride2_patches(t, h, w), ref)
