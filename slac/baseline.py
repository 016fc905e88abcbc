"""The plain PyTorch way of the same model, for ``slac bench`` to time its own updates against:
stock layers in NCHW, the whole batch in one pass, torch's threads inside each operation (in
bfloat16 autocast where the agent's networks use it, ``--amp``).

:func:`plain_agent` copies an agent and swaps its encoder and decoder for :class:`PlainEncoder`
and :class:`PlainDecoder`, which hold the same parameters (the copy's optimiser keeps stepping
them); the filter, reward model, losses and Adam step are the agent's own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from slac.agent import SLACAgent
from slac.networks import Decoder, Encoder


class PlainEncoder(nn.Module):
    """uint8 frames (..., H, W, 3) -> features: the encoder's layers applied in turn."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.net, self.amp = encoder.net, encoder.amp
        self.to(memory_format=torch.contiguous_format)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).contiguous()
        with torch.autocast(x.device.type, torch.bfloat16, enabled=self.amp):
            x = self.net(x.float() / 255)
        return x.float().reshape(*frames.shape[:-3], -1)


class PlainDecoder(nn.Module):
    """z (..., inp) -> mean image (..., 3, 64, 64): the decoder's layers applied in turn."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.net, self.amp = decoder.net, decoder.amp
        self.to(memory_format=torch.contiguous_format)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, torch.bfloat16, enabled=self.amp):
            x = self.net(z.reshape(-1, z.shape[-1], 1, 1))
        return x.float().reshape(*z.shape[:-1], *x.shape[1:])


def plain_agent(agent: SLACAgent) -> SLACAgent:
    """A copy of ``agent`` whose encoder and decoder are the plain ones."""
    twin = copy.deepcopy(agent)
    twin.model.encoder = PlainEncoder(twin.model.encoder)
    twin.model.decoder = PlainDecoder(twin.model.decoder)
    return twin
