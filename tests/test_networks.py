"""Shapes of every network against SLAC.md (Appendix B)."""

import pytest
import torch
from torch import nn

from slac.model import LatentModel
from slac.networks import Critic, Decoder, Encoder, Gaussian


def test_encoder_layers_and_shape():
    enc = Encoder()
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 5, 2), (64, 3, 2), (128, 3, 2), (256, 3, 2), (256, 4, 1)]
    frames = torch.randint(0, 256, (2, 9, 64, 64, 3), dtype=torch.uint8)
    assert enc(frames).shape == (2, 9, 256)


def test_decoder_layers_and_shape():
    dec = Decoder(288)
    convs = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (256, 4, 1), (128, 3, 2), (64, 3, 2), (32, 3, 2), (3, 5, 2)]
    assert dec(torch.randn(2, 9, 288)).shape == (2, 9, 3, 64, 64)


def test_plain_decoder_counts_the_nominal_flops_and_computes_the_same():
    """`slac bench` counts FLOPs with the decoder's plain layers: 2 Cin Cout k^2 per input pixel
    of each transposed conv (closed form), while the fast path's sub-pixel last layer also
    multiplies zero taps and so counts more; both compute the same image."""
    from torch.utils.flop_counter import FlopCounterMode

    dec, n = Decoder(288), 2
    z = torch.randn(n, 288)
    nominal = 0
    h = 1
    for m in dec.net:
        if isinstance(m, nn.ConvTranspose2d):
            kh, kw = m.kernel_size
            nominal += 2 * m.in_channels * m.out_channels * kh * kw * h * h * n
            h = (h - 1) * m.stride[0] - 2 * m.padding[0] + kh + m.output_padding[0]
    counted = {}
    out = {}
    for plain in (True, False):
        dec.plain = plain
        with FlopCounterMode(display=False) as fc:
            out[plain] = dec(z)
        counted[plain] = fc.get_total_flops()
    assert counted[True] == nominal
    assert counted[False] > nominal
    torch.testing.assert_close(out[True], out[False], rtol=1e-4, atol=1e-5)


def test_gaussian_layer_two_hidden_256_and_positive_std():
    g = Gaussian(10, 32, 256)
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (10, 256), (256, 256), (256, 64)]
    mean, std = g(torch.randn(5, 10))
    assert mean.shape == std.shape == (5, 32) and torch.all(std > 0)


def test_pre_softplus_gradient_is_clipped_to_10():
    g = Gaussian(3, 2, 8)
    outputs = []

    def keep(module, inputs, out):
        out.retain_grad()
        outputs.append(out)

    g.net.register_forward_hook(keep)
    mean, std = g(torch.randn(4, 3))
    (std * 1e6 + mean * 1e6).sum().backward()
    grad = outputs[0].grad
    assert grad[:, 2:].abs().max() <= 10.0  # the std half: clipped
    assert grad[:, :2].abs().min() > 10.0  # the mean half: not


def test_latent_model_shapes():
    m = LatentModel(action_dim=6)
    assert (m.z1_dim, m.z2_dim) == (32, 256)
    feats = torch.randn(3, 9, 256)
    actions = torch.rand(3, 8, 6)
    first = torch.zeros(3, 9, dtype=torch.bool)
    first[:, 0] = True
    post = m.filter(feats, actions, first)
    assert post.z1.shape == (3, 9, 32) and post.z2.shape == (3, 9, 256)
    assert post.z.shape == (3, 9, 288)
    assert post.q_mean.shape == post.p_std.shape == (3, 9, 32)
    # step 0 is compared with the fixed prior N(0, I)
    assert torch.all(post.p_mean[:, 0] == 0) and torch.all(post.p_std[:, 0] == 1)


def test_filter_restarts_at_episode_start():
    m = LatentModel(action_dim=2, z1_dim=4, z2_dim=8, hidden=16)
    feats, actions = torch.randn(2, 5, 256), torch.rand(2, 4, 2)
    first = torch.zeros(2, 5, dtype=torch.bool)
    first[:, 0] = True
    first[1, 3] = True
    post = m.filter(feats, actions, first)
    # at a restart, q is q(z1 | x) alone and p is N(0, I)
    qm, qs = m.z1_posterior_init(feats[1, 3])
    torch.testing.assert_close(post.q_mean[1, 3], qm)
    assert torch.all(post.p_mean[1, 3] == 0) and torch.all(post.p_std[1, 3] == 1)
    assert not torch.all(post.p_std[0, 3] == 1)


def test_critic_twin_outputs():
    c = Critic(288, 6, 256)
    q1, q2 = c(torch.randn(4, 288), torch.rand(4, 6))
    assert q1.shape == q2.shape == (4,)
    assert not torch.equal(q1, q2)


@pytest.mark.parametrize("amp", [False, True])
def test_encoder_and_decoder_never_mix_memory_layouts_in_one_op(amp):
    """Element-wise ops on a channels-last tensor and an NCHW one of the same shape run 10-20x
    slower than on two of one layout: the encoder's and decoder's passes, forward and backward,
    give no op such a pair (the decoder's first activation on a 4-D view of a matmul's output
    once did, through autograd's backward of in-place ops on views)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def layout(t):
        return "nchw" if t.is_contiguous() else "cl" if t.is_contiguous(
            memory_format=torch.channels_last) else "other"

    mixed = []

    class Layouts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            maps = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4
                    and a.shape[-1] > 1]
            if len({(tuple(t.shape), layout(t)) for t in maps}) > len({t.shape for t in maps}):
                mixed.append(str(func))
            return func(*args, **(kwargs or {}))

    enc, dec = Encoder(width=8), Decoder(288, width=8)
    enc.amp = dec.amp = amp
    frames = torch.randint(0, 256, (2, 9, 64, 64, 3), dtype=torch.uint8)
    z = torch.randn(2, 9, 288, requires_grad=True)
    with Layouts():
        loss = enc(frames).square().sum() + dec(z).square().sum()
        loss.backward()
    assert not mixed, mixed
