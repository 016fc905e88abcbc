"""PlaNet's recurrent state-space model (Hafner et al., 2019) as a latent model of SLAC's
Figure 5a ablation: ``--model planet``.

Deterministic state h_t = GRU(h_t-1, [s_t-1, a_t-1]) (200 units), stochastic state s_t (30):
    prior      p(s_t | h_t)          posterior  q(s_t | h_t, x_t)
with std = softplus(.) + 0.1, hidden layers of 200, PlaNet's sizes; h and s start at zero at
every episode start. The latent z_t = [s_t, h_t] feeds SLAC's decoder, reward model and critics.
Trained on PlaNet's ELBO: the image and reward log-likelihoods and KL(q || p) per step, with
PlaNet's 3 free nats (the KL of a step counts only above 3 nats).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slac.model import Filtered, active_units, gaussian_kl, sequence_loss
from slac.networks import Decoder, Encoder, Gaussian

STOCHASTIC, DETERMINISTIC, HIDDEN = 30, 200, 200
MIN_STD = 0.1
FREE_NATS = 3.0


class StateGaussian(nn.Module):
    """One hidden ReLU layer -> diagonal Gaussian with std = softplus(.) + 0.1 (PlaNet's)."""

    def __init__(self, inp: int, out: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, 2 * out))

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, pre_std = self.net(torch.cat(xs, -1)).chunk(2, -1)
        return mean, F.softplus(pre_std) + MIN_STD


class PlanetModel(nn.Module):
    def __init__(self, action_dim: int, feature_dim: int = 256, hidden: int = 256,
                 decoder_var: float = 0.1, conv_width: int = 32,
                 stochastic: int = STOCHASTIC, deterministic: int = DETERMINISTIC):
        super().__init__()
        self.z1_dim, self.z2_dim, self.decoder_var = stochastic, deterministic, decoder_var
        self.action_dim = action_dim
        z_dim = stochastic + deterministic
        self.encoder = Encoder(feature_dim, conv_width)
        self.decoder = Decoder(z_dim, conv_width)
        self.embed = nn.Sequential(nn.Linear(stochastic + action_dim, HIDDEN), nn.ReLU())
        self.cell = nn.GRUCell(HIDDEN, deterministic)
        self.prior = StateGaussian(deterministic, stochastic, HIDDEN)
        self.posterior = StateGaussian(deterministic + feature_dim, stochastic, HIDDEN)
        # p(r_t | z_t, a_t, z_t+1): SLAC's reward model, as every model of the ablation has
        self.reward = Gaussian(2 * z_dim + action_dim, 1, hidden)

    @property
    def latent_dim(self) -> int:
        return self.z1_dim + self.z2_dim

    def noise(self, batch: int, steps: int, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The draws of one :meth:`filter` pass: (B, T, s) and an empty (B, T, 0) for h."""
        return (torch.randn(batch, steps, self.z1_dim, generator=generator, device=device),
                torch.zeros(batch, steps, 0, device=device))

    def _deterministic(self, s: torch.Tensor, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.cell(self.embed(torch.cat([s, a], -1)), h)

    def filter(
        self, features: torch.Tensor, actions: torch.Tensor, first: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Filtered:
        """Sample s_{1:T} ~ q and run h_{1:T}, restarting both at zero where ``first`` is set.
        Shapes as :meth:`slac.model.LatentModel.filter`; q and p are those of s."""
        B, T, _ = features.shape
        eps = (noise if noise is not None else self.noise(B, T, generator, features.device))[0]
        s = features.new_zeros(B, self.z1_dim)
        h = features.new_zeros(B, self.z2_dim)
        a = features.new_zeros(B, actions.shape[-1])
        ss, hs, qm, qs, pm, ps = [], [], [], [], [], []
        for t in range(T):
            if t > 0:
                keep = (~first[:, t, None]).to(features.dtype)
                s, h, a = s * keep, h * keep, actions[:, t - 1] * keep
            h = self._deterministic(s, h, a)
            p_mean, p_std = self.prior(h)
            q_mean, q_std = self.posterior(h, features[:, t])
            s = q_mean + q_std * eps[:, t]
            for lst, v in zip((ss, hs, qm, qs, pm, ps), (s, h, q_mean, q_std, p_mean, p_std),
                              strict=True):
                lst.append(v)
        return Filtered(*(torch.stack(v, 1) for v in (ss, hs, qm, qs, pm, ps)), first)

    @torch.no_grad()
    def active_z1(self, frames: torch.Tensor) -> int:
        """How many units of s the first-step posterior uses on these uint8 frames (N, H, W, 3)."""
        f = self.encoder(frames)
        n = len(f)  # h_1 from the zero state, with no draw (logging must not move the RNG)
        h = self._deterministic(f.new_zeros(n, self.z1_dim), f.new_zeros(n, self.z2_dim),
                                f.new_zeros(n, self.action_dim))
        return active_units(self.posterior(h, f)[0])

    def prior_start(self, batch: int, device: torch.device | str = "cpu"):
        """The first step of the generative model: h_1 from the zero state, s_1 ~ p(s | h_1)."""
        s = torch.zeros(batch, self.z1_dim, device=device)
        a = torch.zeros(batch, self.action_dim, device=device)
        return self.prior_step(s, torch.zeros(batch, self.z2_dim, device=device), a)

    def prior_step(self, s: torch.Tensor, h: torch.Tensor, action: torch.Tensor):
        """h' = GRU(h, [s, a]), s' ~ p(s' | h'): one step of the generative model."""
        h = self._deterministic(s, h, action)
        mean, std = self.prior(h)
        return mean + std * torch.randn_like(mean), h

    def loss(self, frames: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
             first: torch.Tensor, post: Filtered) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PlaNet's ELBO on the sequences: as SLAC's Eq. (7), with free nats on each step's KL."""
        kl = gaussian_kl(post.q_mean, post.q_std, post.p_mean, post.p_std).clamp(min=FREE_NATS)
        return sequence_loss(self.decoder, self.decoder_var, self.reward, frames, actions,
                             rewards, first, post, kl)
