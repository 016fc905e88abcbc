"""The SLAC agent: latent model, twin critics on latents, actor on histories, temperature alpha.

One update (released code): sample B sequences; run the encoder and the filtering posterior once
over all of them with the parameters as they are before this update; the model loss (Eq. 7) takes
the first ``model_batch_size`` sequences with gradients; the critics (Eq. 8-9) and the actor
(Eq. 10) take all B with gradients stopped into the model.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from slac.config import Config, ConfigError
from slac.model import LatentModel
from slac.networks import Actor, Critic
from slac.parallel import TwoThreadUpdates
from slac.replay import Batch


def actor_history(
    features: torch.Tensor, actions: torch.Tensor, first: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's view of a sequence: frames before the newest episode start are replaced by
    that start's frame and their actions by zeros, which is exactly what the actor sees at the
    start of an episode when acting (released code: ``filter_before_first_step``)."""
    T = features.shape[1]
    start = (first.long() * torch.arange(T, device=first.device)).amax(1)
    f_start = features[torch.arange(features.shape[0], device=features.device), start]
    feats = torch.where(valid[..., None], features, f_start[:, None])
    acts = actions * valid[:, :-1, None].to(actions.dtype)
    return feats, acts


def glorot_init(m: torch.nn.Module) -> None:
    """Glorot-uniform weights and zero biases (``--init glorot``): TensorFlow's layer defaults,
    which the authors' released code uses."""
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        torch.nn.init.xavier_uniform_(m.weight)
        torch.nn.init.zeros_(m.bias)


class SLACAgent(TwoThreadUpdates):
    def __init__(self, cfg: Config, action_dim: int, device: torch.device,
                 policy_std_scale: float = 1.0):
        self.cfg, self.device, self.action_dim = cfg, device, action_dim
        z_dim = cfg.z1_dim + cfg.z2_dim
        self.model = LatentModel(action_dim, cfg.z1_dim, cfg.z2_dim, cfg.feature_dim, cfg.hidden,
                                 cfg.decoder_var, cfg.conv_width).to(device)
        self.actor = Actor(cfg.feature_dim, action_dim, cfg.sequence_length, cfg.hidden,
                           policy_std_scale).to(device)
        self.critic = Critic(z_dim, action_dim, cfg.hidden).to(device)
        if cfg.init == "glorot":
            for net in (self.model, self.actor, self.critic):
                net.apply(glorot_init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)
        self.target_entropy = -float(action_dim)
        # fused: one pass over each parameter's state; the model's step (2.5M parameters at the
        # cpu preset's sizes) took half the time of the default's here
        fused = device.type in ("cpu", "cuda")
        self.model_opt = torch.optim.Adam(self.model.parameters(), cfg.model_lr, fused=fused)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), cfg.actor_lr, fused=fused)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), cfg.critic_lr, fused=fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], cfg.alpha_lr, fused=fused)
        self.rng_model = torch.Generator(device).manual_seed(cfg.seed)
        self.rng_actor_critic = torch.Generator(device).manual_seed(cfg.seed + 1)
        if cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("--amp uses bfloat16, which this GPU does not support")
        for net in (self.model.encoder, self.model.decoder):
            net.amp = cfg.amp
            if cfg.compile:
                net.compile()  # in place: parameter names and checkpoints stay the same

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    # ---------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Sample a ~ pi(. | frames (L, H, W, 3) uint8, actions (L-1, A)) for one environment.

        The whole history is encoded with the current encoder (~1.5 ms for 8 frames here), as in
        training; caching older frames' features would feed the actor stale ones.
        """
        f = torch.from_numpy(frames).to(self.device)
        a = torch.from_numpy(actions).to(self.device, torch.float32)
        features = self.model.encoder(f)[None]
        action, _ = self.actor.sample(features, a[None])
        return action[0].cpu().numpy()

    # ---------------------------------------------------------------- learning
    # Two streams of work per update, each drawing its noise from its own generator: the model
    # stream (Eq. 7) and the actor-critic stream (Eq. 8-10). Below, the one-thread update; on a
    # CPU with two or more threads (``--overlap``) the schedules of slac/parallel.py.
    def generators(self) -> tuple[torch.Generator, torch.Generator]:
        """The model stream's and the actor-critic stream's random generators."""
        return self.rng_model, self.rng_actor_critic

    def set_model_lr(self, lr: float) -> None:
        """The latent model's Adam step size from now on (pretraining may take its own)."""
        for group in self.model_opt.param_groups:
            group["lr"] = lr

    def update_model(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One step of Eq. (7) on ``batch`` alone (model pretraining). On a CPU with two or more
        threads (``--overlap``) the two halves of the batch take one thread each and their
        gradients are summed: the same draws and the same gradient up to fp32 rounding, and
        1.3-1.9x faster here than both threads on the whole batch."""
        b = batch.to(self.device)
        n = b.frames.shape[0]
        if not (self._two_threads() and n >= 2):
            return self._model_step(b, self._head_posterior(b)[1])
        return self._update_model_split(b)

    @torch.no_grad()
    def _encode(self, b: Batch) -> torch.Tensor:
        """Encoder features of ``b``, no gradients."""
        return self.model.encoder(b.frames)

    @torch.no_grad()
    def _features_and_latents(self, b: Batch, features: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features (unless given) and posterior latents of ``b`` for the actor-critic,
        no gradients: the filter's draws for the whole batch first, then the filter in
        :meth:`filter_pieces` (which the overlapped schedule's streams share)."""
        f = self._encode(b) if features is None else features
        noise = self.model.noise(f.shape[0], f.shape[1], self.rng_actor_critic, f.device)
        pieces = self.filter_pieces(f.shape[0])
        return f, torch.cat([self._filter_piece(f, b, noise, *p) for p in pieces])

    @staticmethod
    def filter_pieces(sequences: int) -> list[tuple[int, int]]:
        """The actor-critic's sequences in the pieces its posterior is filtered in: two halves.
        Every schedule filters in these, so all compute the same latents bit for bit."""
        half = sequences // 2
        return [(0, half), (half, sequences)] if half else [(0, sequences)]

    @torch.no_grad()
    def _filter_piece(self, features: torch.Tensor, b: Batch,
                      noise: tuple[torch.Tensor, torch.Tensor], lo: int, hi: int) -> torch.Tensor:
        """Posterior latents of sequences lo:hi of ``b``, with their share of ``noise``."""
        return self.model.filter(features[lo:hi], b.actions[lo:hi], b.first[lo:hi],
                                 noise=(noise[0][lo:hi], noise[1][lo:hi])).z

    def _model_step(self, b: Batch, post, before_step=None) -> dict[str, torch.Tensor]:
        loss, stats = self.model.loss(b.frames, b.actions, b.rewards, b.valid, post)
        self.model_opt.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()  # the other stream has finished reading the model's weights
        self.model_opt.step()
        return stats

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One update of model, critics, actor and alpha on one batch (Algorithm 1)."""
        b = batch.to(self.device)
        mb = self.cfg.model_batch_size
        head, tail = b.rows(0, mb), b.rows(mb)
        schedule = self.schedule(mb, tail.frames.shape[0])
        if schedule == "split":
            return self._update_split_model(b, head, tail)
        if schedule == "overlap":
            return self._update_overlapped(b, head, tail)
        features, post = self._head_posterior(head)
        tail_fz = self._features_and_latents(tail) if tail.frames.shape[0] else None
        stats = self._model_step(head, post)
        stats.update(self.update_actor_critic(*self._ac_inputs(features, post, tail_fz), b))
        return stats

    def _head_posterior(self, head: Batch):
        """Features and a filtering-posterior sample of the model's sequences, with gradients."""
        features = self.model.encoder(head.frames)
        return features, self.model.filter(features, head.actions, head.first, self.rng_model)

    @staticmethod
    def _ac_inputs(features, post, tail_fz) -> tuple[torch.Tensor, torch.Tensor]:
        f, z = features.detach(), post.z.detach()
        if tail_fz is None:
            return f, z
        return torch.cat([f, tail_fz[0]]), torch.cat([z, tail_fz[1]])

    @torch.no_grad()
    def td_target(self, z_next: torch.Tensor, h_next: tuple[torch.Tensor, torch.Tensor],
                  reward: torch.Tensor, terminal: torch.Tensor) -> torch.Tensor:
        """r + gamma V(z'), with V from the target critics (Eq. 9); no bootstrap at termination
        (a time limit is not a termination, so it bootstraps)."""
        a_next, logp_next = self.actor.sample(*h_next, generator=self.rng_actor_critic)
        q1_t, q2_t = self.critic_target(z_next, a_next)
        v_next = torch.min(q1_t, q2_t) - self.alpha * logp_next  # Eq. (9)
        return reward + self.cfg.gamma * (1.0 - terminal) * v_next

    def update_actor_critic(self, features: torch.Tensor, z: torch.Tensor, b: Batch):
        """Eq. (8)-(10) and the temperature, on detached encoder features and latents."""
        feats, acts = actor_history(features, b.actions, b.first, b.valid)
        h_next = (feats[:, 1:], acts[:, 1:])  # x_{2:T}, a_{2:T-1}: the history at z_{T}
        z_t, z_next = z[:, -2], z[:, -1]
        a_t, r_t, done = b.actions[:, -1], b.rewards[:, -1], b.terminals[:, -1]
        alpha = self.alpha
        target = self.td_target(z_next, h_next, r_t, done)
        q1, q2 = self.critic(z_t, a_t)
        critic_loss = 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target))  # Eq. (8)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        action, logp = self.actor.sample(*h_next, generator=self.rng_actor_critic)
        self.critic.requires_grad_(False)
        q1_pi, q2_pi = self.critic(z_next, action)
        self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - torch.min(q1_pi, q2_pi)).mean()  # Eq. (10)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

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

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "model_opt": self.model_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "rng_model": self.rng_model.get_state(),
            "rng_actor_critic": self.rng_actor_critic.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("model", "actor", "critic", "critic_target", "model_opt", "actor_opt",
                     "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("rng_model", "rng_actor_critic"):
            if name in state:  # absent in checkpoints of versions before the two streams
                getattr(self, name).set_state(state[name])


class PolicyHistory:
    """The last L frames (HWC uint8) and L-1 actions the actor sees when acting.

    At an episode start it holds L copies of the first frame and zero actions, matching the
    masking of histories that cross an episode start in training (:func:`actor_history`).
    """

    def __init__(self, length: int, action_dim: int):
        self.length, self.action_dim = length, action_dim
        self.frames: np.ndarray | None = None
        self.actions = np.zeros((length - 1, action_dim), dtype=np.float32)

    def reset(self, frame_chw: np.ndarray) -> None:
        self.frames = np.repeat(frame_chw.transpose(1, 2, 0)[None], self.length, 0)
        self.actions[:] = 0.0

    def push(self, action: np.ndarray, frame_chw: np.ndarray) -> None:
        self.frames = np.concatenate([self.frames[1:], frame_chw.transpose(1, 2, 0)[None]])
        self.actions = np.concatenate([self.actions[1:], action[None].astype(np.float32)])
