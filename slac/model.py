"""The sequential latent variable model of SLAC (Section 5, Appendix B) and its loss, Eq. (7).

Generative model p:   z1_1 ~ N(0, I)                z2_1 ~ p(z2_1 | z1_1)
                      z1_t+1 ~ p(z1 | z2_t, a_t)     z2_t+1 ~ p(z2 | z1_t+1, z2_t, a_t)
                      x_t ~ N(decoder(z_t), sigma^2)  r_t ~ p(r | z_t, a_t, z_t+1)
Inference model q:    z1_1 ~ q(z1 | x_1)             z1_t+1 ~ q(z1 | x_t+1, z2_t, a_t)
                      z2 from the same networks as p, so the KL is over z1 alone.

The paper's model ablations (Section 6.2, Figure 5a) are variants of this one, each a
:class:`Variant`: without time (every step starts afresh), with one latent instead of two, with
deterministic transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slac.config import Config
from slac.networks import Decoder, Encoder, Gaussian


@dataclass(frozen=True)
class Variant:
    """How a latent variable model of Figure 5a differs from SLAC's. A std of ``None`` is
    learned (softplus); a number fixes it: 0 makes that part deterministic."""

    factored: bool = True  # z = [z1, z2], z2 ~ p(z2 | z1, ...); else one latent z1
    sequential: bool = True  # transitions through time; else every step is a first step
    z1_std: float | None = None  # q(z1 | ...)
    prior_std: float | None = None  # p(z1_t+1 | ...); p(z1_1) is N(0, I) in every variant
    z2_std: float | None = None  # p(z2 | ...), shared by q


VARIANTS = {
    "slac": Variant(),
    "vae": Variant(factored=False, sequential=False),  # Kingma & Welling, one latent per frame
    "factored-vae": Variant(sequential=False),  # our factorisation, no temporal dependency
    "filtering": Variant(factored=False),  # sequential, one latent
    "partially-stochastic": Variant(z2_std=0.0),  # deterministic path z2, as in PlaNet
    "deterministic": Variant(z1_std=0.0, prior_std=1.0, z2_std=0.0),  # released code's settings
}


@dataclass
class Filtered:
    """Reparameterised samples of the filtering posterior and the z1 distributions of q and p."""

    z1: torch.Tensor  # (B, T, z1)
    z2: torch.Tensor  # (B, T, z2)
    q_mean: torch.Tensor
    q_std: torch.Tensor
    p_mean: torch.Tensor
    p_std: torch.Tensor
    first: torch.Tensor  # (B, T): where p(z1) is the fixed N(0, I)

    @property
    def z(self) -> torch.Tensor:
        return torch.cat([self.z1, self.z2], -1)


def gaussian_kl(mq: torch.Tensor, sq: torch.Tensor, mp: torch.Tensor, sp: torch.Tensor):
    """KL(N(mq, sq^2) || N(mp, sp^2)), summed over the last dimension (analytic)."""
    return (sp.log() - sq.log() + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5).sum(-1)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor | float) -> torch.Tensor:
    """-log N(x; mean, var) element-wise."""
    var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device)
    return 0.5 * ((x - mean) ** 2 / var + var.log() + math.log(2 * math.pi))


def image_nll(x: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """-log N(x; mean, var I) summed over each image (..., C, H, W) -> (...): the same value as
    ``gaussian_nll(...).sum()``, with one fused squared-error pass (images are most of the
    model's element-wise work)."""
    sq = F.mse_loss(mean, x, reduction="none").sum((-3, -2, -1))
    return 0.5 * sq / var + 0.5 * math.prod(x.shape[-3:]) * math.log(2 * math.pi * var)


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Units whose posterior mean varies across inputs: Var_x(E_q[z | x]) > ``threshold``, over
    the first dimension of ``means`` (N, units). Burda et al. (2016)'s count of active units."""
    return int((means.var(0) > threshold).sum())


def sequence_loss(decoder: nn.Module, decoder_var: float, reward: nn.Module,
                  frames: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                  first: torch.Tensor, post: Filtered, kl: torch.Tensor
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The negative ELBO of Eq. (7) with the reward model, summed over time, averaged over
    sequences, from a model's posterior sample and its per-step KL term ``kl`` (B, T): every
    frame counts; only the reward across an episode start (``first``) is masked."""
    z = post.z
    target = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, T, 3, H, W)
    nll_x = image_nll(target, decoder(z), decoder_var)  # -log p(x_t | z_t)
    r_mean, r_std = reward(z[:, :-1], actions, z[:, 1:])
    reward_nll = gaussian_nll(rewards, r_mean.squeeze(-1), r_std.squeeze(-1) ** 2)
    m_r = (~first[:, 1:]).float()  # transition t -> t+1 within one episode
    image_term = nll_x.sum(1).mean()
    kl_term = kl.sum(1).mean()
    reward_term = (reward_nll * m_r).sum(1).mean()
    loss = image_term + kl_term + reward_term  # Eq. (7) + reward model
    stats = {
        "model_loss": loss.detach(),
        "image_nll": image_term.detach(),
        "kl": kl_term.detach(),
        "reward_nll": reward_term.detach(),
    }
    return loss, stats


class LatentModel(nn.Module):
    def __init__(self, action_dim: int, z1_dim: int = 32, z2_dim: int = 256,
                 feature_dim: int = 256, hidden: int = 256, decoder_var: float = 0.1,
                 conv_width: int = 32, variant: Variant = VARIANTS["slac"]):
        super().__init__()
        v = self.variant = variant
        if not v.factored:
            z2_dim = 0
        self.z1_dim, self.z2_dim, self.decoder_var = z1_dim, z2_dim, decoder_var
        z_dim, a = z1_dim + z2_dim, action_dim
        carry = z2_dim if v.factored else z1_dim  # what a transition reads of z_t
        self.encoder = Encoder(feature_dim, conv_width)
        self.decoder = Decoder(z_dim, conv_width)
        # p(z2_1 | z1_1), p(z1_t+1 | z2_t, a_t), p(z2_t+1 | z1_t+1, z2_t, a_t)
        if v.factored:
            self.z2_prior_init = Gaussian(z1_dim, z2_dim, hidden, v.z2_std)
        if v.sequential:
            self.z1_prior = Gaussian(carry + a, z1_dim, hidden, v.prior_std)
        if v.factored and v.sequential:
            self.z2_prior = Gaussian(z1_dim + z2_dim + a, z2_dim, hidden, v.z2_std)
        # q(z1_1 | x_1), q(z1_t+1 | x_t+1, z2_t, a_t)
        self.z1_posterior_init = Gaussian(feature_dim, z1_dim, hidden, v.z1_std)
        if v.sequential:
            self.z1_posterior = Gaussian(feature_dim + carry + a, z1_dim, hidden, v.z1_std)
        # p(r_t | z_t, a_t, z_t+1)
        self.reward = Gaussian(2 * z_dim + a, 1, hidden)

    @property
    def latent_dim(self) -> int:
        """Size of z_t, the critics' input."""
        return self.z1_dim + self.z2_dim

    def _carry(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return z2 if self.variant.factored else z1

    def noise(self, batch: int, steps: int, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The standard normal draws of one :meth:`filter` pass: (B, T, z1) and (B, T, z2)."""
        return (torch.randn(batch, steps, self.z1_dim, generator=generator, device=device),
                torch.randn(batch, steps, self.z2_dim, generator=generator, device=device))

    def filter(
        self, features: torch.Tensor, actions: torch.Tensor, first: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Filtered:
        """Sample z_{1:T} ~ q(z_{1:T} | x_{1:T}, a_{1:T-1}), restarting where ``first`` is set.

        features (B, T, F), actions (B, T-1, A), first (B, T) with first[:, 0] all True.
        ``noise`` (from :meth:`noise`) fixes the draws; else they come from ``generator``.
        Both branches are computed for the whole batch and selected, so no step syncs the host.
        """
        B, T, _ = features.shape
        seq, factored = self.variant.sequential, self.variant.factored
        if not seq:
            first = torch.ones_like(first)
        eps1, eps2 = noise if noise is not None else self.noise(B, T, generator, features.device)
        # What does not depend on the previous steps' samples is computed for all steps at once,
        # outside the loop: q(z1 | x_t) and p(z2 | z1) and their samples (used at episode
        # starts) and, after it, p(z1_t+1 | z2_t, a_t). The loop's two MLPs run unrolled.
        init_mean, init_std = self.z1_posterior_init(features)
        init_z1 = init_mean + init_std * eps1
        if factored:
            init_m2, init_s2 = self.z2_prior_init(init_z1)
            init_z2 = init_m2 + init_s2 * eps2
        else:
            init_z2 = init_z1[..., :0]
        z1, z2, q_mean, q_std = init_z1, init_z2, init_mean, init_std
        if seq:  # steps 2..T from the previous step's sample, or anew where an episode starts
            z1_posterior = self.z1_posterior.unrolled()
            z2_prior = self.z2_prior.unrolled() if factored else None
            z1s, z2s, qm, qs = [init_z1[:, 0]], [init_z2[:, 0]], [init_mean[:, 0]], [init_std[:, 0]]
            for t in range(1, T):
                z2_prev, a_prev, restart = z2s[-1], actions[:, t - 1], first[:, t, None]
                m1, s1 = z1_posterior(features[:, t], self._carry(z1s[-1], z2_prev), a_prev)
                z1s.append(torch.where(restart, init_z1[:, t], m1 + s1 * eps1[:, t]))
                qm.append(m1)
                qs.append(s1)
                if factored:
                    m2, s2 = z2_prior(z1s[-1], z2_prev, a_prev)
                    z2s.append(torch.where(restart, init_z2[:, t], m2 + s2 * eps2[:, t]))
                else:
                    z2s.append(z1s[-1][..., :0])
            z1, z2 = torch.stack(z1s, 1), torch.stack(z2s, 1)
            restart = first[..., None]
            q_mean = torch.where(restart, init_mean, torch.stack(qm, 1))
            q_std = torch.where(restart, init_std, torch.stack(qs, 1))
            # p(z1_1) = N(0, I), and so at every episode start; p(z1_t+1 | z2_t, a_t) elsewhere
            p_mean, p_std = self.z1_prior(self._carry(z1[:, :-1], z2[:, :-1]), actions)
            p_mean = F.pad(torch.where(restart[:, 1:], 0.0, p_mean), (0, 0, 1, 0))
            p_std = F.pad(torch.where(restart[:, 1:], 1.0, p_std), (0, 0, 1, 0), value=1.0)
        else:
            p_mean, p_std = torch.zeros_like(z1), torch.ones_like(z1)
        return Filtered(z1, z2, q_mean, q_std, p_mean, p_std, first)

    @torch.no_grad()
    def active_z1(self, frames: torch.Tensor) -> int:
        """How many of the z1 units the first-step posterior q(z1_1 | x_1) uses on these uint8
        frames (N, H, W, 3). 0 while the model draws only the average scene: the encoder's
        features then barely differ between frames (posterior collapse)."""
        mean, _ = self.z1_posterior_init(self.encoder(frames))
        return active_units(mean)

    def prior_step(self, z1: torch.Tensor, z2: torch.Tensor, action: torch.Tensor):
        """z1' ~ p(z1 | z2, a), z2' ~ p(z2 | z1', z2, a): one step of the generative model
        from z = (z1, z2); a model without time starts afresh."""
        if not self.variant.sequential:
            return self.prior_start(z1.shape[0], z1.device)
        m1, s1 = self.z1_prior(self._carry(z1, z2), action)
        z1 = m1 + s1 * torch.randn_like(m1)
        if not self.variant.factored:
            return z1, z1[..., :0]
        m2, s2 = self.z2_prior(z1, z2, action)
        return z1, m2 + s2 * torch.randn_like(m2)

    def prior_start(self, batch: int, device: torch.device | str = "cpu"):
        """z1 ~ N(0, I), z2 ~ p(z2 | z1): the first step of the generative model."""
        z1 = torch.randn(batch, self.z1_dim, device=device)
        if not self.variant.factored:
            return z1, z1[..., :0]
        m2, s2 = self.z2_prior_init(z1)
        return z1, m2 + s2 * torch.randn_like(m2)

    def loss(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        first: torch.Tensor,
        post: Filtered,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. (7) plus the reward log-likelihood (:func:`sequence_loss`), for each variant its
        own ELBO: the KL term is over its stochastic latent z1.

        ``first`` (B, T) marks episode starts. Every frame counts, an older episode's in the
        sequence too (the posterior restarts at the start); only the reward of the transition
        that crosses into the new episode is masked, as in the released code.
        """
        if self.variant.z1_std == 0:  # a point posterior: -log p(z1_t | z_t-1, a_t-1) instead
            # (the released code's Monte Carlo KL), none where p is the fixed N(0, I)
            kl = gaussian_nll(post.z1, post.p_mean, post.p_std**2).sum(-1) * ~post.first
        else:
            kl = gaussian_kl(post.q_mean, post.q_std, post.p_mean, post.p_std)
        return sequence_loss(self.decoder, self.decoder_var, self.reward, frames, actions,
                             rewards, first, post, kl)


def build(cfg: Config, action_dim: int) -> nn.Module:
    """The latent model ``cfg.model`` names, at ``cfg``'s sizes; a model with one latent gives
    it ``cfg.z2_dim`` units (256, as in the released code); PlaNet's takes its own sizes."""
    if cfg.model == "planet":
        from slac.planet import PlanetModel  # it builds on this module

        return PlanetModel(action_dim, cfg.feature_dim, cfg.hidden, cfg.decoder_var,
                           cfg.conv_width)
    v = VARIANTS[cfg.model]
    z1 = cfg.z1_dim if v.factored else cfg.z2_dim
    return LatentModel(action_dim, z1, cfg.z2_dim, cfg.feature_dim, cfg.hidden, cfg.decoder_var,
                       cfg.conv_width, v)
