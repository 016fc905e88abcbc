# ruff: noqa: E501  (each patch is a line of code kept whole)
"""Break each behaviour once in a clone at /tmp/brk and run the test that must notice (see the .md)."""
import os
import subprocess
import sys

B = [
 ("agent-detach", "slac/agent.py", "f, z = features.detach(), post.z.detach()", "f, z = features, post.z",
  "tests/test_agent.py::test_update_gives_the_model_the_gradient_of_its_own_loss_alone"),
 ("critic-grad-off", "slac/agent.py", "        self.critic.requires_grad_(False)\n", "",
  "tests/test_agent.py::test_update_gives_the_critics_the_gradient_of_their_own_loss_alone"),
 ("polyak-rate", "slac/agent.py", "p_t.lerp_(p, self.cfg.tau)", "p_t.lerp_(p, 2 * self.cfg.tau)",
  "tests/test_agent.py::test_polyak_update_moves_the_target_critics_tau_of_the_way"),
 ("polyak-direction", "slac/agent.py", "p_t.lerp_(p, self.cfg.tau)", "p.lerp_(p_t, self.cfg.tau)",
  "tests/test_agent.py::test_polyak_update_moves_the_target_critics_tau_of_the_way"),
 ("logp-no-logdet", "slac/networks.py", "return (normal - log_det).sum(-1)", "return normal.sum(-1)",
  "tests/test_math.py::test_actor_samples_in_bounds_with_matching_log_prob"),
 ("policy-scale-ignored", "slac/networks.py", ".exp() * self.std_scale", ".exp()",
  "tests/test_math.py::test_actor_samples_in_bounds_with_matching_log_prob"),
 ("ref-target-entropy", "slac/agent.py", "self.target_entropy = -float(action_dim)", "self.target_entropy = -1.0",
  "tests/test_reference.py"),
 ("ref-terminal-ignored", "slac/agent.py", "return reward + self.cfg.gamma * (1.0 - terminal) * v_next", "return reward + self.cfg.gamma * v_next",
  "tests/test_reference.py"),
 ("ref-model-sgd", "slac/agent.py", "self.model_opt = torch.optim.Adam(self.model.parameters(), cfg.model_lr, fused=fused)", "self.model_opt = torch.optim.SGD(self.model.parameters(), cfg.model_lr)",
  "tests/test_reference.py"),
 ("ref-alpha-step", "slac/agent.py", "        self.alpha_opt.step()\n", "",
  "tests/test_reference.py"),
 ("overlap-chunks", "slac/parallel.py", "    if step > 8:\n        step = max(1, chunk // steps)\n", "    step = 1\n",
  "tests/test_agent.py::test_overlapped_schedule_chosen_with_two_threads_is_the_one_thread_update"),
 ("overlap-noise-order", "slac/parallel.py", "        noise = agent.actor_critic_noise(n, steps)\n        pieces = agent.filter_pieces(n)\n", "        noise = agent.actor_critic_noise(n, steps)\n        noise = (noise[0].flip(0), noise[1].flip(0))\n        pieces = agent.filter_pieces(n)\n",
  "tests/test_agent.py::test_overlapped_schedule_chosen_with_two_threads_is_the_one_thread_update"),
 ("gym-no-early-stop", "slac/envs/gym.py", "            if terminated or truncated:\n                break\n", "",
  "tests/test_gym.py::test_action_repeat_matches_single_steps_and_stops_when_the_episode_ends"),
 ("store-done-as-terminal", "slac/trainer.py", "self.replay.add(action, step.reward, step.obs, step.terminated)", "self.replay.add(action, step.reward, step.obs, step.done)",
  "tests/test_collection.py::test_time_limits_and_physics_errors_are_not_terminal"),
 ("store-no-terminal", "slac/trainer.py", "self.replay.add(action, step.reward, step.obs, step.terminated)", "self.replay.add(action, step.reward, step.obs, False)",
  "tests/test_collection.py::test_terminal_transitions_reach_the_batch_and_stop_the_bootstrap"),
 ("dmc-random-std1", "slac/tasks.py", "rng.normal(0.0, 2.0, action_dim)", "rng.normal(0.0, 1.0, action_dim)",
  "tests/test_collection.py::test_dmc_random_actions_are_tanh_of_a_normal_with_std_2"),
 ("replay-rng-not-restored", "slac/replay.py", "        self.rng.bit_generator.state = state[\"rng\"]\n", "",
  "tests/test_replay.py::test_memory_mapped_replay_wraps_and_resumes_what_its_checkpoint_samples"),
 ("bench-flops-subpixel", "slac/bench.py", "    agent.model.decoder.plain = True\n", "",
  "tests/test_bench.py::test_bench_reports_consistent_figures"),
 ("plot-first-run-only", "slac/plot.py", "    mean = values.mean(0)\n", "    mean = values[0]\n",
  "tests/test_viz.py::test_plot_command"),
 ("amp-float16", "slac/networks.py", "with torch.autocast(x.device.type, torch.bfloat16, enabled=self.amp):", "with torch.autocast(x.device.type, torch.float16, enabled=self.amp):",
  "tests/test_equivalence.py::test_amp_stays_close_to_fp32_and_returns_fp32"),
 ("amp-gain", "slac/networks.py", "        x = torch.cat(x).float()  # the likelihood is computed in fp32", "        x = torch.cat(x).float() * (1.03 if self.amp else 1.0)",
  "tests/test_equivalence.py::test_amp_stays_close_to_fp32_and_returns_fp32"),
 ("viz-no-checkpoint-fallback", "slac/checkpoint.py", "    state = load_latest(run_dir, device)\n    if state is None:", "    state = None\n    if state is None:",
  "tests/test_viz.py::test_viz_and_eval_fall_back_to_the_newest_checkpoint"),
 ("prune-before-write", "slac/checkpoint.py", "    atomic_save(state, path)\n    for old in list_checkpoints(run_dir)[KEEP:]:\n        old.unlink(missing_ok=True)\n", "    for old in list_checkpoints(run_dir)[KEEP - 2:]:\n        old.unlink(missing_ok=True)\n    atomic_save(state, path)\n",
  "tests/test_durable.py::test_full_disk_stops_with_a_message_and_keeps_the_last_checkpoint"),
 ("resumable-none", "slac/config.py", '    "run_dir", "env_steps", "threads", "overlap", "device", "log_every", "video", "compile")', '    "run_dir", "env_steps", "overlap", "device", "video", "compile")',
  "tests/test_durable.py::test_changed_hyperparameter_is_refused_unless_overridden"),
 ("override-ignored", "slac/trainer.py", "        if diffs and not override:", "        if diffs:",
  "tests/test_durable.py::test_override_accepts_a_real_change"),
 ("override-not-applied", "slac/trainer.py", "        cfg = resolve(dataclasses.replace(stored, **with_preset(given)))", "        cfg = resolve(stored)",
  "tests/test_durable.py::test_override_accepts_a_real_change"),
 ("log-window-not-restored", "slac/trainer.py", "        self.metrics.load_state_dict(state[\"log_window\"])\n", "",
  "tests/test_durable.py::test_killed_and_resumed_runs_match_the_run_left_alone"),
 ("never-overlap", "slac/parallel.py", '            name = "overlap"\n', '            name = "split"\n',
  "tests/test_durable.py::test_overlapped_updates_resume_exactly"),
 ("no-fallback-past-damaged", "slac/checkpoint.py", "            return load(path, device)\n        except (CorruptCheckpoint, OSError, RuntimeError, EOFError) as e:\n            warnings.warn(", "            return load(path, device)\n        except (CorruptCheckpoint, OSError, RuntimeError, EOFError) as e:\n            return None\n            warnings.warn(",
  "tests/test_durable.py::test_resume_falls_back_past_a_damaged_newest_checkpoint_and_stays_exact"),
 ("all-damaged-traceback", "slac/trainer.py", '            raise ConfigError(f"{run_dir}: every checkpoint is damaged; use a new --run-dir")', '            raise RuntimeError(f"{run_dir}: every checkpoint is damaged; use a new --run-dir")',
  "tests/test_durable.py::test_every_checkpoint_damaged_is_one_line_on_the_command_line"),
 ("sigint-not-handled", "slac/trainer.py", "                        for s in (signal.SIGINT, signal.SIGTERM)}", "                        for s in (signal.SIGTERM,)}",
  "tests/test_durable.py::test_sigint_stops_with_a_checkpoint_the_run_resumes_exactly_from"),
 ("stop-checkpoint-skipped", "slac/trainer.py", "        except _Stop:\n            self.save_checkpoint()\n", "        except _Stop:\n",
  "tests/test_durable.py::test_sigint_stops_with_a_checkpoint_the_run_resumes_exactly_from"),
 ("gym-inexact-keeps-episode", "slac/trainer.py", "            self.in_episode = False\n        self.eval_env", "            pass\n        self.eval_env",
  "tests/test_collection.py::test_a_non_mujoco_gym_task_resumes"),
]
only = sys.argv[1:]
env = dict(os.environ, PYTHONPATH="/tmp/brk", OMP_WAIT_POLICY="PASSIVE")
for name, path, old, new, test in B:
    if only and name not in only:
        continue
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd="/tmp/brk", check=True)
    p = os.path.join("/tmp/brk", path)
    s = open(p).read()
    if s.count(old) != 1:
        print(f"{name}: PATCH NOT FOUND ({s.count(old)})", flush=True)
        continue
    open(p, "w").write(s.replace(old, new))
    r = subprocess.run(["/work/main/.venv/bin/python", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
                       cwd="/tmp/brk", env=env, capture_output=True, text=True, timeout=1800)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
    print(f"{name}: {'FAILS as it should' if r.returncode else 'STILL PASSES'} | {test} | {last}", flush=True)
subprocess.run(["git", "checkout", "-q", "--", "."], cwd="/tmp/brk", check=True)
