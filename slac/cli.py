"""The ``slac`` command: ``train``, ``eval``, ``viz``, ``plot``, ``sweep``, ``report``,
``bench``, ``tasks``.

Bad input is reported on one line (``slac: error: ...``) with exit code 2 and nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from slac.config import (
    MODELS,
    PRESETS,
    Config,
    ConfigError,
    check_writable,
    field_type,
    resolve,
    with_preset,
)
from slac.tasks import TASKS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2
        self.exit(2, f"slac: error: {message}\n")


_METAVAR = {int: "N", float: "X", str: "STR"}


def _one_line_help(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, max_help_position=38, width=220)


def add_config_flags(parser: argparse.ArgumentParser, lists: bool = False,
                     leave_out: tuple[str, ...] = ()) -> None:
    """One flag per :class:`Config` field, its help line from the field's metadata. With
    ``lists``, a flag takes a comma list of values (kept as text for the sweep to parse)."""
    for f in dataclasses.fields(Config):
        if f.name in leave_out:
            continue
        kind = field_type(f)
        default = "per task" if f.default is None and f.name not in ("run_dir",) else f.default
        help_line = f.metadata["help"] + ("" if f.default is None else f" [{default}]")
        if kind is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=argparse.SUPPRESS,
                                action=argparse.BooleanOptionalAction, help=help_line)
            continue
        if lists:
            metavar = "|".join(f.metadata["choices"]) if "choices" in f.metadata else \
                _METAVAR.get(kind, "STR")
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=argparse.SUPPRESS,
                                help=help_line, metavar=f"{metavar}[,...]")
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=argparse.SUPPRESS,
            choices=f.metadata.get("choices"), help=help_line,
            metavar=f.metadata.get("metavar",
                                   None if "choices" in f.metadata else _METAVAR.get(kind, "STR")),
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
    bn.add_argument("--layers", action="store_true",
                    help="also time each encoder and decoder layer of the model-only update")
    bn.add_argument("--model", default="slac", choices=MODELS,
                    help="latent variable model, as `slac train --model` [slac]")
    bn.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                    help="model and actor-critic streams concurrently, as `slac train` [on]")
    bn.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                    help="bfloat16 autocast in the encoder and decoder, as `slac train --amp`; "
                         "the peak includes a bfloat16 GEMM [off]")
    bn.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto|cpu|cuda [auto]")
    sw = sub.add_parser(
        "sweep", help="a grid of runs (tasks x seeds x flags given as comma lists) on Ray",
        description="Run every combination as its own run directory under --out, as Ray "
        "tasks: a local Ray by default, a cluster with --address. Rerunning the command "
        "skips finished runs and resumes the others. Any `slac train` flag given as a comma "
        "list is a grid axis, e.g. --decoder-var 0.04,0.1,0.4.",
        formatter_class=_one_line_help)
    sw.add_argument("--out", required=True, help="sweep directory (sweep.json, one run "
                    "directory per combination, logs/)")
    sw.add_argument("--tasks", required=True, help="comma list of tasks (see `slac tasks`)")
    sw.add_argument("--seeds", default="0", help="seeds: 0-9, 0,3,5 or 0-2,7 [0]")
    sw.add_argument("--cpus-per-run", type=float, default=1.0,
                    help="Ray CPUs of a run; its --threads is the whole part [1]")
    sw.add_argument("--gpus-per-run", type=float, default=0.0,
                    help="Ray GPUs of a run (fractions share a GPU); > 0 runs on cuda [0]")
    sw.add_argument("--memory-per-run", type=float, metavar="GIB",
                    help="memory Ray reserves per run [its replay + 2 GiB]")
    sw.add_argument("--address", help="join this Ray cluster (`ray start --head` prints it; "
                    "auto: the one on this machine) [a local Ray for this command]")
    sw.add_argument("--retries", type=int, default=2,
                    help="times a failed run is started again before it is reported [2]")
    sw.add_argument("--override", action="store_true",
                    help="accept a changed grid for an existing --out (changed runs rerun)")
    add_config_flags(sw, lists=True, leave_out=("task", "seed", "run_dir", "threads", "device"))
    rp = sub.add_parser("report", help="tables of a sweep: per task and variant, and IQM / "
                        "optimality gap across tasks (rliable)")
    rp.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories")
    rp.add_argument("--out", help="write report.md and report.csv here [the sweep directory]")
    rp.add_argument("--reps", type=int, default=2000, help="bootstrap samples [2000]")
    pl = sub.add_parser("plot", help="return against environment steps, with the published curve")
    pl.add_argument("run_dirs", nargs="+", metavar="DIR", help="run or sweep directories")
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

    given = {k: v for k, v in vars(args).items() if k not in ("command", "override", "argv")}
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
    return envs.make(cfg.task, cfg.seed + offset, cfg.action_repeat, cfg.render_quality,
                     observation=cfg.observation)


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
    if policy.model is None:
        raise ConfigError(f"{args.run_dir}: --agent {policy.config.agent} has no latent model "
                          "whose predictions to draw")
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
    if args.amp and args.layers:
        raise ConfigError("--layers times the fp32 layers of the update; leave out --amp")
    import json
    from pathlib import Path

    from slac import bench

    if args.json:  # fail now, not after the measurements
        check_writable(str(Path(args.json).absolute().parent))
    given = {"task": args.task, "threads": args.threads, "device": args.device,
             "preset": args.preset, "overlap": args.overlap, "model": args.model, "amp": args.amp}
    cfg = resolve(Config(**with_preset({k: v for k, v in given.items() if v is not None})))
    from slac.runtime import resolve_device

    try:
        resolve_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    result = bench.run(cfg, args.iterations, per_layer=args.layers)
    print(bench.report(result))
    if args.json:
        Path(args.json).absolute().parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from slac import driver, sweep

    for name, value, low in (("--cpus-per-run", args.cpus_per_run, 0), ("--retries",
                             args.retries, -1), ("--gpus-per-run", args.gpus_per_run, -1)):
        if not value > low:
            raise ConfigError(f"{name} must be {'positive' if low == 0 else '>= 0'}, got {value}")
    if args.memory_per_run is not None and not args.memory_per_run > 0:
        raise ConfigError(f"--memory-per-run must be positive, got {args.memory_per_run}")
    skip = {"command", "argv", "out", "tasks", "seeds", "cpus_per_run", "gpus_per_run",
            "memory_per_run", "address", "retries", "override"}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    grid = sweep.make_grid(args.tasks, args.seeds, flags)
    out = Path(args.out)
    check_writable(str(out.absolute()), "--out")
    driver.check_address(args.address)
    sweep.check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    held = sweep.lock(out)  # one driver per sweep
    try:
        state = sweep.open_sweep(out, grid, "slac " + shlex.join(args.argv), args.override)
        res = driver.Resources(args.cpus_per_run, args.gpus_per_run, args.memory_per_run)
        return driver.run(out, state, res, args.address, args.retries, args.override)
    finally:
        held.release()


def cmd_report(args: argparse.Namespace) -> int:
    if args.reps <= 0:
        raise ConfigError(f"--reps must be positive, got {args.reps}")
    from pathlib import Path

    from slac import report

    out = Path(args.out or args.dirs[0])
    check_writable(str(out.absolute()), "--out")
    try:
        text, table = report.report(args.dirs, args.reps)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text + "\n")
    (out / "report.csv").write_text(table)
    print(text)
    print(f"\nwritten: {out / 'report.md'}, {out / 'report.csv'}")
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
    args.argv = sys.argv[1:] if argv is None else argv
    try:
        if args.command == "tasks":
            return cmd_tasks()
        commands = {"train": cmd_train, "eval": cmd_eval, "viz": cmd_viz, "plot": cmd_plot,
                    "bench": cmd_bench, "sweep": cmd_sweep, "report": cmd_report}
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
