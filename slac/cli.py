"""The ``slac`` command: ``train``, ``eval``, ``tasks``.

Bad input is reported on one line (``slac: error: ...``) with exit code 2 and nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing

from slac.config import PRESETS, Config, ConfigError, check_writable, resolve, with_preset
from slac.tasks import TASKS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2
        self.exit(2, f"slac: error: {message}\n")


def _base_type(tp) -> type:
    tp = eval(tp, vars(typing)) if isinstance(tp, str) else tp  # noqa: S307 - our annotations
    if isinstance(tp, types.UnionType):
        return next(t for t in typing.get_args(tp) if t is not type(None))
    return tp


_METAVAR = {int: "N", float: "X", str: "STR"}


def _one_line_help(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, max_help_position=34, width=220)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Config` field, its help line from the field's metadata."""
    for f in dataclasses.fields(Config):
        kind = _base_type(f.type)
        default = "per task" if f.default is None and f.name not in ("run_dir",) else f.default
        help_line = f.metadata["help"] + ("" if f.default is None else f" [{default}]")
        if kind is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=argparse.SUPPRESS,
                                action=argparse.BooleanOptionalAction, help=help_line)
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=argparse.SUPPRESS,
            choices=f.metadata.get("choices"), help=help_line,
            metavar=None if "choices" in f.metadata else _METAVAR.get(kind, "STR"),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="slac", description="Stochastic Latent Actor-Critic from pixels.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train SLAC on a task (Algorithm 1)",
                           description="Train SLAC. Defaults are the paper's protocol.",
                           formatter_class=_one_line_help)
    add_config_flags(train)
    train.add_argument("--override", action="store_true",
                       help="resume even if flags change the run's settings (listed otherwise)")
    ev = sub.add_parser("eval", help="evaluate the agent saved in a run directory")
    ev.add_argument("--run-dir", required=True,
                    help="run directory (its agent.pt, else its newest checkpoint)")
    ev.add_argument("--episodes", type=int, default=10, help="evaluation episodes [10]")
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto|cpu|cuda [auto]")
    sub.add_parser("tasks", help="list the tasks with their action repeat and decoder variance")
    vz = sub.add_parser("viz", help="model predictions (Appendix E) as a PNG grid and a video")
    vz.add_argument("--run-dir", required=True,
                    help="run directory (its agent.pt, else its newest checkpoint)")
    vz.add_argument("--out", help="output directory [RUN_DIR/viz]")
    vz.add_argument("--steps", type=int, default=16, help="steps of the sequence [16]")
    vz.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto|cpu|cuda [auto]")
    bn = sub.add_parser("bench", help="seconds per update, FLOPs and the fraction of peak here")
    bn.add_argument("--json", help="write the figures to this JSON file")
    bn.add_argument("--task", default="cheetah-run", help="task whose sizes to use [cheetah-run]")
    bn.add_argument("--iterations", type=int, default=5, help="timed repeats of each part [5]")
    bn.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores) [0]")
    bn.add_argument("--preset", choices=tuple(PRESETS), help="measure a preset's sizes")
    bn.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                    help="model and actor-critic streams concurrently, as `slac train` [on]")
    bn.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto|cpu|cuda [auto]")
    pl = sub.add_parser("plot", help="return against environment steps, with the published curve")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    pl.add_argument("--out", required=True, help="figure file (PNG)")
    pl.add_argument("--band", choices=("std", "ci"), default="std",
                    help="band across seeds: standard deviation or bootstrap 95%% CI [std]")
    return parser


def cmd_tasks() -> int:
    print(f"{'task':<22}{'suite':<7}{'action repeat':>14}{'decoder var':>13}{'random steps':>14}"
          f"{'pretraining':>13}{'updates/step':>14}")
    for name, t in TASKS.items():
        print(f"{name:<22}{t.suite:<7}{t.action_repeat:>14}{t.decoder_var:>13}"
              f"{t.random_steps:>14}{t.pretrain_updates:>13}{t.updates_per_step:>14}")
    print("gym:<id>: any Gymnasium environment that renders rgb_array and has Box actions, "
          "with the Gym protocol at action repeat 1")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from slac import trainer

    given = {k: v for k, v in vars(args).items() if k not in ("command", "override")}
    return trainer.start(given, args.override).run()


def _load_policy(run_dir: str, device: str):
    from slac import policy

    try:
        return policy.load(run_dir, device)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _seeded_env(cfg: Config, offset: int):
    """The task's environment, seeded ``cfg.seed + offset``, and torch's generator (the
    policy's noise) seeded the same: `slac eval` and `slac viz` give the same result every time."""
    import torch

    from slac import envs

    torch.manual_seed(cfg.seed + offset)
    return envs.make(cfg.task, cfg.seed + offset, cfg.action_repeat, cfg.render_quality)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {args.episodes}")
    import numpy as np

    from slac.evaluate import evaluate

    policy = _load_policy(args.run_dir, args.device)
    cfg = policy.config
    env = _seeded_env(cfg, 2_000_000)
    try:
        returns, _ = evaluate(policy, env, args.episodes)
    finally:
        env.close()
    print(f"{cfg.task} after {policy.step} env steps: return {np.mean(returns):.1f} "
          f"+- {np.std(returns):.1f} over {args.episodes} episodes")
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    if args.steps <= 0:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    from pathlib import Path

    from slac import viz
    from slac.evaluate import run_episode

    policy = _load_policy(args.run_dir, args.device)
    out = Path(args.out or Path(args.run_dir) / "viz")
    check_writable(str(out))
    cfg = policy.config
    env = _seeded_env(cfg, 3_000_000)
    try:
        episode = run_episode(policy, env, record=True, max_steps=args.steps)
    finally:
        env.close()
    rows = viz.predictions(policy.model, episode.frames, episode.actions)
    out.mkdir(parents=True, exist_ok=True)
    png = viz.save_png(viz.grid(rows), out / "predictions.png")
    video = viz.save_video(viz.video_frames(rows), out / "predictions.mp4", fps=4)
    print(f"{cfg.task} after {policy.step} env steps, {len(episode.actions)} steps: "
          f"{png} and {video}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.iterations <= 0:
        raise ConfigError(f"--iterations must be positive, got {args.iterations}")
    import json
    from pathlib import Path

    from slac import bench

    if args.json:  # fail now, not after the measurements
        check_writable(str(Path(args.json).absolute().parent))
    given = {"task": args.task, "threads": args.threads, "device": args.device,
             "preset": args.preset, "overlap": args.overlap}
    cfg = resolve(Config(**with_preset({k: v for k, v in given.items() if v is not None})))
    from slac.runtime import resolve_device

    try:
        resolve_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    result = bench.run(cfg, args.iterations)
    print(bench.report(result))
    if args.json:
        Path(args.json).absolute().parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slac import plot

    check_writable(str(Path(args.out).absolute().parent), "--out directory")
    try:
        table = plot.plot(args.run_dirs, args.out, args.band)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    print(table)
    print(f"figure: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "tasks":
            return cmd_tasks()
        commands = {"train": cmd_train, "eval": cmd_eval, "viz": cmd_viz, "plot": cmd_plot,
                    "bench": cmd_bench}
        return commands[args.command](args)
    except ConfigError as e:
        print(f"slac: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\nslac: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
