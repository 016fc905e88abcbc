"""The paper's two SAC baselines (Section 6.1), as the released code configures them
(``sac_pixels.gin``, ``sac_state.gin``); neither has a latent model.

- ``--agent sac-pixels``: the critics and the actor see the encoded frames of the last L steps
  (no actions; frames before an episode start replaced by its first frame, as SLAC's actor sees
  them); the critic loss trains the encoder, the actor loss does not.
- ``--agent sac-state``: the same on the simulator's state vectors instead of encoded frames
  (the released configuration: one state, ``--sequence-length 1``).
"""

from __future__ import annotations

import numpy as np
import torch

from slac.agent import actor_history, glorot_init
from slac.config import Config
from slac.networks import Actor, Critic, Encoder
from slac.replay import Batch
from slac.sac import SoftActorCritic
from slac.tasks import get_task


class SACAgent:
    """The encoder (for states: none), the soft actor-critic on its features, and the update on
    one thread. ``state_dim``: the size of a state vector, 0 for pixels."""

    model = None  # no latent model: nothing to pretrain, no predictions to draw

    def __init__(self, cfg: Config, action_dim: int, device: torch.device, state_dim: int = 0):
        self.cfg, self.device, self.action_dim = cfg, device, action_dim
        size = cfg.sequence_length * (state_dim or cfg.feature_dim)
        self.encoder = (Encoder(cfg.feature_dim, cfg.conv_width) if not state_dim
                        else torch.nn.Identity()).to(device)
        self.actor = Actor(size, action_dim, cfg.hidden,
                           get_task(cfg.task).policy_std_scale).to(device)
        self.critic = Critic(size, action_dim, cfg.hidden).to(device)
        if cfg.init == "glorot":
            for net in (self.encoder, self.actor, self.critic):
                net.apply(glorot_init)
        self.rng_actor_critic = torch.Generator(device).manual_seed(cfg.seed + 1)
        self.sac = SoftActorCritic(self.actor, self.critic, cfg, action_dim, device,
                                   self.rng_actor_critic, critic_extra=self.encoder.parameters())

    @property
    def alpha(self) -> torch.Tensor:
        return self.sac.alpha

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every network's parameters (the target critics' too)."""
        nets = (self.encoder, self.actor, self.critic, self.sac.critic_target)
        return [p for n in nets for p in n.parameters()]

    def set_model_lr(self, lr: float) -> None:
        """No latent model: nothing to set."""

    @torch.no_grad()
    def act(self, frames: np.ndarray, actions: np.ndarray, deterministic: bool = False,
            start: int = 0) -> np.ndarray:
        """a ~ pi(. | encoded frames (L, H, W, 3) uint8, or states (L, S)); past actions and
        ``start`` are not read (the history before the episode start is its first frame)."""
        f = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        features = self.encoder(f)[None]
        if deterministic:
            return torch.tanh(self.actor(features)[0])[0].cpu().numpy()
        return self.actor.sample(features)[0][0].cpu().numpy()

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Eq. (8)-(10) on the last transition of each sequence, the critics' gradient
        reaching the encoder."""
        b = batch.to(self.device)
        feats, _ = actor_history(self.encoder(b.frames), b.actions, b.first, b.valid)
        now, after = feats[:, :-1], feats[:, 1:].detach()  # the histories at T-1 and T
        return self.sac.update((now,), (after,), (now.detach(),), (after,),
                               b.actions[:, -1], b.rewards[:, -1], b.terminals[:, -1])

    def update_model(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise RuntimeError(f"--agent {self.cfg.agent} has no latent model to pretrain")

    def state_dict(self) -> dict:
        return {"encoder": self.encoder.state_dict(), **self.sac.state_dict(),
                "rng_actor_critic": self.rng_actor_critic.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.sac.load_state_dict(state)
        self.rng_actor_critic.set_state(state["rng_actor_critic"])
