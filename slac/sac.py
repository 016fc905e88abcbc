"""Soft actor-critic (Eq. 8-10): twin critics, their target copies, the actor and the
temperature with their Adam optimisers, and one update from given inputs. SLAC's agent runs it
on latents and histories; the pixel-SAC baseline (:mod:`slac.baselines`) on an encoder that
its critic trains.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from slac.config import Config
from slac.networks import Actor, Critic

Inputs = tuple[torch.Tensor, ...]


class SoftActorCritic:
    """SAC around a built ``actor`` and ``critic``; ``critic_extra`` are parameters the critic
    loss trains besides the critics' (the pixel baseline's encoder)."""

    def __init__(self, actor: Actor, critic: Critic, cfg: Config, action_dim: int,
                 device: torch.device, generator: torch.Generator,
                 critic_extra: Iterable[torch.nn.Parameter] = ()):
        self.actor, self.critic, self.cfg, self.generator = actor, critic, cfg, generator
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)
        self.target_entropy = -float(action_dim)
        fused = device.type in ("cpu", "cuda")  # one pass over each parameter's state
        self.actor_opt = torch.optim.Adam(actor.parameters(), cfg.actor_lr, fused=fused)
        self.critic_opt = torch.optim.Adam([*critic.parameters(), *critic_extra], cfg.critic_lr,
                                           fused=fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], cfg.alpha_lr, fused=fused)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def td_target(self, critic_next: Inputs, actor_next: Inputs, reward: torch.Tensor,
                  terminal: torch.Tensor) -> torch.Tensor:
        """r + gamma V(s'), with V from the target critics (Eq. 9) on the critics' and the
        actor's inputs at the next step; no bootstrap at termination (a time limit is not a
        termination, so it bootstraps)."""
        a_next, logp_next = self.actor.sample(*actor_next, generator=self.generator)
        q1_t, q2_t = self.critic_target(*critic_next, a_next)
        v_next = torch.min(q1_t, q2_t) - self.alpha * logp_next  # Eq. (9)
        return reward + self.cfg.gamma * (1.0 - terminal) * v_next

    def update(self, critic_t: Inputs, critic_next: Inputs, actor_t: Inputs, actor_next: Inputs,
               action: torch.Tensor, reward: torch.Tensor, terminal: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """Eq. (8)-(10) and the temperature on one transition per sequence: the critics at
        (critic_t, action) against the target from the next step, the actor and the temperature
        at actor_t against the critics as they were before this update. Every loss is computed
        before any step (released code); then the target critics' Polyak step."""
        alpha = self.alpha
        target = self.td_target(critic_next, actor_next, reward, terminal)
        q1, q2 = self.critic(*critic_t, action)
        critic_loss = 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))  # Eq. (8)

        a, logp = self.actor.sample(*actor_t, generator=self.generator)
        self.critic.requires_grad_(False)
        q1_pi, q2_pi = self.critic(*(x.detach() for x in critic_t), a)
        self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - torch.min(q1_pi, q2_pi)).mean()  # Eq. (10)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()

        opts = (self.critic_opt, self.actor_opt, self.alpha_opt)
        for opt, loss in zip(opts, (critic_loss, actor_loss, alpha_loss), strict=True):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        for opt in opts:
            opt.step()

        with torch.no_grad():
            params = zip(self.critic.parameters(), self.critic_target.parameters(), strict=True)
            for p, p_t in params:
                p_t.lerp_(p, self.cfg.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": alpha,
            "entropy": -logp.detach().mean(),
            "q": q1.detach().mean(),
        }

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
