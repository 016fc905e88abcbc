"""The SLAC agent: latent model, twin critics on latents, actor on histories, temperature alpha.

One update (released code): sample B sequences; run the encoder and the filtering posterior once
over all of them with the parameters as they are before this update; the model loss (Eq. 7) takes
the first ``model_batch_size`` sequences with gradients; the critics (Eq. 8-9) and the actor
(Eq. 10) take all B with gradients stopped into the model, every loss computed before any step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from slac import runtime
from slac.config import Config, ConfigError
from slac.model import Filtered
from slac.model import build as build_model
from slac.networks import Actor, Critic
from slac.replay import Batch
from slac.sac import SoftActorCritic
from slac.tasks import get_task


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


class ModelGradients(NamedTuple):
    """A share of Eq. (7)'s gradient, its statistics, and its detached features and latents."""

    grads: tuple[torch.Tensor | None, ...]
    stats: dict[str, torch.Tensor]
    features: torch.Tensor
    z: torch.Tensor


def glorot_init(m: torch.nn.Module) -> None:
    """Glorot-uniform weights and zero biases (``--init glorot``): TensorFlow's layer defaults,
    which the authors' released code uses."""
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        torch.nn.init.xavier_uniform_(m.weight)
        torch.nn.init.zeros_(m.bias)


class SLACAgent:
    """SLAC's networks, optimisers and random generators, and its update on one thread.

    The update's pieces are public so that :mod:`slac.parallel` can schedule them over two
    threads; :meth:`update` and :meth:`update_model` run them one after the other.
    """

    def __init__(self, cfg: Config, action_dim: int, device: torch.device):
        self.cfg, self.device, self.action_dim = cfg, device, action_dim
        self.model = build_model(cfg, action_dim).to(device)
        L = cfg.sequence_length  # the history: L encoded frames and L-1 actions
        size = {"latent": self.model.latent_dim,
                "history": L * cfg.feature_dim + (L - 1) * action_dim}
        self.actor = Actor(size[cfg.actor_input], action_dim, cfg.hidden,
                           get_task(cfg.task).policy_std_scale).to(device)
        self.critic = Critic(size[cfg.critic_input], action_dim, cfg.hidden).to(device)
        if cfg.init == "glorot":
            for net in (self.model, self.actor, self.critic):
                net.apply(glorot_init)
        fused = device.type in ("cpu", "cuda")  # one pass over each parameter's state
        self.model_opt = torch.optim.Adam(self.model.parameters(), cfg.model_lr, fused=fused)
        # one generator per update stream (Eq. 7; Eq. 8-10), so the streams may run concurrently
        self.rng_model = torch.Generator(device).manual_seed(cfg.seed)
        self.rng_actor_critic = torch.Generator(device).manual_seed(cfg.seed + 1)
        self.sac = SoftActorCritic(self.actor, self.critic, cfg, action_dim, device,
                                   self.rng_actor_critic)
        if cfg.amp and not runtime.bf16_supported(device):
            raise ConfigError("--amp uses bfloat16, which this GPU does not support"
                              if device.type == "cuda" else
                              "--amp uses bfloat16, for which this CPU has no units (AMX or "
                              "AVX512-BF16): it would run slower than without")
        for net in (self.model.encoder, self.model.decoder):
            net.amp = cfg.amp
            if cfg.compile:
                net.compile()  # in place: parameter names and checkpoints stay the same

    @property
    def alpha(self) -> torch.Tensor:
        return self.sac.alpha

    @property
    def critic_target(self) -> Critic:
        return self.sac.critic_target

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every network's parameters (the target critics' too)."""
        nets = (self.model, self.actor, self.critic, self.sac.critic_target)
        return [p for n in nets for p in n.parameters()]

    @property
    def log_alpha(self) -> torch.Tensor:
        return self.sac.log_alpha

    # ---------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, frames: np.ndarray, actions: np.ndarray, deterministic: bool = False,
            start: int = 0) -> np.ndarray:
        """a ~ pi(. | frames (L, H, W, 3) uint8, actions (L-1, A)) for one environment; with
        ``deterministic``, the mode tanh(mean) instead of a sample. ``start``: the index of the
        episode's first frame in the history, where a latent actor's posterior restarts.

        The whole history is encoded with the current encoder, as in training; caching older
        frames' features would feed the actor stale ones.
        """
        f = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        a = torch.from_numpy(np.asarray(actions, np.float32)).to(self.device)[None]
        features = self.model.encoder(f)[None]
        if self.cfg.actor_input == "latent":  # z_t of the posterior filtered over the history
            first = torch.zeros(features.shape[:2], dtype=torch.bool, device=self.device)
            first[0, [0, start]] = True
            inputs = (self.model.filter(features, a, first).z[:, -1],)
        else:
            inputs = (features, a)
        if deterministic:
            return torch.tanh(self.actor(*inputs)[0])[0].cpu().numpy()
        action, _ = self.actor.sample(*inputs)
        return action[0].cpu().numpy()

    # ---------------------------------------------------------------- learning
    # Two streams of work per update, each drawing its noise from its own generator: the model
    # stream (Eq. 7) and the actor-critic stream (Eq. 8-10). The pieces below are what
    # slac/parallel.py's schedules run on two threads; update() runs them on one.
    def generators(self) -> tuple[torch.Generator, torch.Generator]:
        """The model stream's and the actor-critic stream's random generators."""
        return self.rng_model, self.rng_actor_critic

    def set_model_lr(self, lr: float) -> None:
        """The latent model's Adam step size from now on (pretraining may take its own)."""
        for group in self.model_opt.param_groups:
            group["lr"] = lr

    def update_model(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One step of Eq. (7) on ``batch`` alone (model pretraining)."""
        b = batch.to(self.device)
        return self.model_step(b, self.model_posterior(b)[1])

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One update of model, critics, actor and alpha on one batch (Algorithm 1): the model
        loss on the first ``model_batch_size`` sequences, the actor-critic on all of them."""
        b = batch.to(self.device)
        head, tail = b.rows(0, self.cfg.model_batch_size), b.rows(self.cfg.model_batch_size)
        features, post = self.model_posterior(head)
        tail_fz = self.latents(tail) if tail.frames.shape[0] else None
        stats = self.model_step(head, post)
        stats.update(self.update_actor_critic(
            *self.actor_critic_inputs(features, post, tail_fz), b))
        return stats

    def model_posterior(self, head: Batch) -> tuple[torch.Tensor, Filtered]:
        """Features and a filtering-posterior sample of the model's sequences, with gradients,
        the draws from the model stream's generator."""
        features = self.model.encoder(head.frames)
        return features, self.model.filter(features, head.actions, head.first, self.rng_model)

    def model_step(self, b: Batch, post: Filtered,
                   before_step: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
        """Eq. (7) on ``b`` from its posterior sample, its gradient and one Adam step; calls
        ``before_step()`` between the two (another thread may still read the weights)."""
        loss, stats = self.model.loss(b.images, b.actions, b.rewards, b.first, post)
        self.model_opt.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        self.model_opt.step()
        return stats

    def model_noise(self, sequences: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The model stream's filter draws for ``sequences`` sequences, made up front."""
        return self.model.noise(sequences, steps, self.rng_model, self.device)

    def model_gradients(self, b: Batch, lo: int, hi: int,
                        noise: tuple[torch.Tensor, torch.Tensor]) -> ModelGradients:
        """Sequences lo:hi of ``b``'s share of Eq. (7) with their share of ``noise``: the
        gradient and statistics weighted by (hi - lo) / len(b), so that the shares sum to the
        whole batch's, and the detached features and latents. Leaves the weights alone."""
        n = b.frames.shape[0]
        h = b.rows(lo, hi)
        features = self.model.encoder(h.frames)
        post = self.model.filter(features, h.actions, h.first,
                                 noise=(noise[0][lo:hi], noise[1][lo:hi]))
        loss, stats = self.model.loss(h.images, h.actions, h.rewards, h.first, post)
        w = (hi - lo) / n  # Eq. (7) averages over sequences: each share by its size
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss * w, params, allow_unused=True)
        return ModelGradients(grads, {k: v * w for k, v in stats.items()}, features.detach(),
                              post.z.detach())

    def step_model(self, shares: list[ModelGradients]) -> ModelGradients:
        """Sum the shares' gradients and take one Adam step; the summed statistics and the
        shares' features and latents, concatenated."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        for i, p in enumerate(params):
            parts = [s.grads[i] for s in shares if s.grads[i] is not None]
            p.grad = functools.reduce(torch.add, parts) if parts else None
        self.model_opt.step()
        stats = {k: functools.reduce(torch.add, [s.stats[k] for s in shares])
                 for k in shares[0].stats}
        return ModelGradients((), stats, torch.cat([s.features for s in shares]),
                              torch.cat([s.z for s in shares]))

    @torch.no_grad()
    def encode(self, b: Batch) -> torch.Tensor:
        """Encoder features of ``b``, no gradients."""
        return self.model.encoder(b.frames)

    def actor_critic_noise(self, sequences: int, steps: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor-critic stream's filter draws for ``sequences`` sequences, made up front."""
        return self.model.noise(sequences, steps, self.rng_actor_critic, self.device)

    @torch.no_grad()
    def latents(self, b: Batch, features: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features (unless given) and posterior latents of ``b`` for the actor-critic,
        no gradients: the draws for the whole batch first, then the filter in
        :meth:`filter_pieces`."""
        f = self.encode(b) if features is None else features
        noise = self.actor_critic_noise(f.shape[0], f.shape[1])
        pieces = self.filter_pieces(f.shape[0])
        return f, torch.cat([self.filter_piece(f, b, noise, *p) for p in pieces])

    @staticmethod
    def filter_pieces(sequences: int) -> list[tuple[int, int]]:
        """The actor-critic's sequences in the pieces its posterior is filtered in: two halves.
        Every schedule filters in these, so all compute the same latents bit for bit."""
        half = sequences // 2
        return [(0, half), (half, sequences)] if half else [(0, sequences)]

    @torch.no_grad()
    def filter_piece(self, features: torch.Tensor, b: Batch,
                     noise: tuple[torch.Tensor, torch.Tensor], lo: int, hi: int) -> torch.Tensor:
        """Posterior latents of sequences lo:hi of ``b``, with their share of ``noise``."""
        return self.model.filter(features[lo:hi], b.actions[lo:hi], b.first[lo:hi],
                                 noise=(noise[0][lo:hi], noise[1][lo:hi])).z

    @staticmethod
    def actor_critic_inputs(features: torch.Tensor, post: Filtered,
                            tail: tuple[torch.Tensor, torch.Tensor] | None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor-critic's features and latents: the model's sequences' (detached), then
        the other sequences' (``tail``, already without gradients)."""
        f, z = features.detach(), post.z.detach()
        if tail is None:
            return f, z
        return torch.cat([f, tail[0]]), torch.cat([z, tail[1]])

    def td_target(self, critic_next: tuple[torch.Tensor, ...],
                  actor_next: tuple[torch.Tensor, ...],
                  reward: torch.Tensor, terminal: torch.Tensor) -> torch.Tensor:
        """r + gamma V(s') of Eq. (9): :meth:`slac.sac.SoftActorCritic.td_target`."""
        return self.sac.td_target(critic_next, actor_next, reward, terminal)

    def update_actor_critic(self, features: torch.Tensor, z: torch.Tensor, b: Batch):
        """Eq. (8)-(10) and the temperature, on detached encoder features and latents.

        As in the released code: the critics take the last transition (step T-1 to T); the
        actor and the temperature take step T-1 (which may be an episode's first step),
        against the critics as they were before this update; every loss is computed before any
        step. The critics see a latent sample or the history (``--critic-input``), the actor
        the history or a latent sample (``--actor-input``).
        """
        feats, acts = actor_history(features, b.actions, b.first, b.valid)
        inputs = {  # each input at the last transition's two steps, T-1 and T
            "history": ((feats[:, :-1], acts[:, :-1]),  # x_{1:T-1}, a_{1:T-2}
                        (feats[:, 1:], acts[:, 1:])),  # x_{2:T}, a_{2:T-1}
            "latent": ((z[:, -2],), (z[:, -1],)),
        }
        critic_t, critic_next = inputs[self.cfg.critic_input]
        actor_t, actor_next = inputs[self.cfg.actor_input]
        return self.sac.update(critic_t, critic_next, actor_t, actor_next,
                               b.actions[:, -1], b.rewards[:, -1], b.terminals[:, -1])

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            **self.sac.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            "rng_model": self.rng_model.get_state(),
            "rng_actor_critic": self.rng_actor_critic.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.sac.load_state_dict(state)
        for name in ("rng_model", "rng_actor_critic"):
            if name in state:  # absent in checkpoints of versions before the two streams
                getattr(self, name).set_state(state[name])


def make_agent(cfg: Config, action_dim: int, device: torch.device, state_dim: int = 0):
    """The agent ``cfg.agent`` names: :class:`SLACAgent` or a SAC baseline (``state_dim``: the
    size of sac-state's state vector)."""
    if cfg.agent != "slac":
        from slac.sac_agents import SACAgent  # it builds on this module

        return SACAgent(cfg, action_dim, device, state_dim if cfg.agent == "sac-state" else 0)
    return SLACAgent(cfg, action_dim, device)
