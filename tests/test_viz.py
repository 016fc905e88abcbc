"""Pictures: model predictions, videos, learning curves, and the published data they overlay."""

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import run

from slac import published, viz
from slac.model import LatentModel


def test_published_curves_match_the_anchors():
    cup = published.curve("ball_in_cup-catch")
    assert cup.decoder_var == 0.04 and cup.returns.shape[0] == 10
    mean, std = cup.at(100_000)
    assert round(mean) == 918 and round(std) == 21
    cart = published.curve("cartpole-swingup")
    assert cart.decoder_var == 0.1 and round(cart.at(50_000)[0]) == 226
    assert round(published.curve("walker-walk").at(500_000)[0]) == 952
    with pytest.raises(KeyError):
        published.curve("pong")


def test_predictions_rows_shapes_and_rng_untouched():
    model = LatentModel(action_dim=2, z1_dim=4, z2_dim=8, hidden=16)
    frames = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    actions = np.zeros((5, 2), np.float32)
    before = torch.get_rng_state()
    rows = viz.predictions(model, frames, actions)
    assert torch.equal(before, torch.get_rng_state()), "viz must not perturb training RNG"
    assert rows.shape == (4, 6, 64, 64, 3) and rows.dtype == np.uint8
    assert np.array_equal(rows[0], frames)


def test_grid_and_video_files(tmp_path):
    rows = np.random.default_rng(1).integers(0, 256, (4, 5, 64, 64, 3), dtype=np.uint8)
    img = viz.grid(rows, scale=2)
    assert img.shape == (4 * 130 + 2, 170 + 5 * 130 + 2, 3)
    assert (img[:, :170] < 128).any(), "row captions are drawn"
    path = viz.save_png(img, tmp_path / "g.png")
    assert imageio.imread(path).shape == img.shape
    video = viz.save_video(viz.video_frames(rows), tmp_path / "v.mp4")
    assert video.exists() and len(imageio.mimread(video)) == 5


def test_viz_command_writes_grid_and_video(trained_run, tmp_path):
    done = run("viz", "--run-dir", str(trained_run), "--out", str(tmp_path), "--steps", "8")
    assert done.returncode == 0, done.stderr
    img = imageio.imread(tmp_path / "predictions.png")
    assert img.shape[1] >= 256 and img.shape[0] == 4 * (128 + 2) + 2
    frames = img[:, 170:]
    assert frames.std() > 10, "grid is blank"
    assert (tmp_path / "predictions.mp4").exists() or (tmp_path / "predictions.gif").exists()
    again = run("viz", "--run-dir", str(trained_run), "--out", str(tmp_path / "again"),
                "--steps", "8")
    assert again.returncode == 0, again.stderr
    # the episode (environment and the policy's noise) and the model's samples are seeded
    assert (imageio.imread(tmp_path / "again" / "predictions.png") == img).all()


def test_training_writes_eval_videos_and_tensorboard_images(trained_run):
    videos = sorted((trained_run / "videos").glob("eval-*.mp4"))
    assert [v.name for v in videos] == ["eval-000000400.mp4", "eval-000000800.mp4"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained_run / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Images("model/predictions")) == 2


def test_plot_command(trained_run, tmp_path):
    """Two seeds of one configuration (the trained run and a copy with other returns): one
    group whose mean at the last common step is the runs' own mean, in the table."""
    import csv
    import json
    import shutil

    other = tmp_path / "seed1"
    shutil.copytree(trained_run, other, ignore=shutil.ignore_patterns("replay", "checkpoints"))
    meta = json.loads((other / "config.json").read_text())
    meta["config"]["seed"] = 1
    (other / "config.json").write_text(json.dumps(meta))
    rows = list(csv.DictReader(open(trained_run / "eval.csv")))
    with open(other / "eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "return_mean": float(r["return_mean"]) + 100})
    out = tmp_path / "fig.png"
    done = run("plot", str(trained_run), str(other), "--out", str(out))
    assert done.returncode == 0, done.stderr
    last = [ln for ln in done.stdout.splitlines() if "800 last" in ln]
    assert len(last) == 1 and "2 seeds" in last[0], done.stdout
    want = float(rows[-1]["return_mean"]) + 50  # the mean of r and r + 100
    assert float(last[0].split()[-2]) == pytest.approx(want, abs=0.051), last[0]
    img = imageio.imread(out)
    assert img.shape[0] > 300 and img.shape[1] > 400
    assert img[..., :3].std() > 10


@pytest.mark.e2e
def test_plot_bad_run_dir(tmp_path):
    done = run("plot", str(tmp_path), "--out", str(tmp_path / "f.png"))
    assert done.returncode == 2 and "not a run directory" in done.stderr


def test_viz_and_eval_fall_back_to_the_newest_checkpoint(trained_run, tmp_path):
    """Before the first evaluation writes agent.pt (during pretraining), `slac eval` and `slac
    viz` take the agent from the newest checkpoint; at the end of a run both hold the same
    agent, so the commands give the same results from either."""
    import shutil

    only = tmp_path / "only-checkpoints"
    shutil.copytree(trained_run / "checkpoints", only / "checkpoints")
    results = {}
    for name, d in (("agent.pt", trained_run), ("checkpoint", only)):
        ev = run("eval", "--run-dir", str(d), "--episodes", "1")
        assert ev.returncode == 0, ev.stderr[-2000:]
        vz = run("viz", "--run-dir", str(d), "--out", str(tmp_path / name), "--steps", "4")
        assert vz.returncode == 0, vz.stderr[-2000:]
        results[name] = ev.stdout, imageio.imread(tmp_path / name / "predictions.png")
    assert "after 800 env steps" in results["checkpoint"][0]
    assert results["checkpoint"][0] == results["agent.pt"][0]
    assert np.array_equal(results["checkpoint"][1], results["agent.pt"][1])


def test_plot_label_names_what_differs_from_the_paper_or_the_runs_preset():
    from dataclasses import asdict

    from slac.config import Config, with_preset
    from slac.plot import Run

    def label(**given):
        cfg = Config(**with_preset({"task": "ball_in_cup-catch", **given})).resolved()
        return Run(None, cfg.task, asdict(cfg), np.zeros(1), np.zeros(1)).label

    assert label() == "ours (paper config)"
    assert label(batch_size=64) == "ours (batch-size 64)"
    assert label(preset="cpu") == "ours (preset cpu)"
    assert label(preset="cpu", model_lr=1e-4) == "ours (preset cpu, model-lr 0.0001)"
