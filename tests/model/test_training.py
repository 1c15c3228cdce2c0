"""Training: a few steps on CPU, checkpoints, exact resume, torchrun, the train command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from air3d.cli import main
from air3d.model import Predictor, load_checkpoint, save_checkpoint
from air3d.model.train_config import load_train_config
from air3d.model.training import train
from tests.conftest import tiny_train_config


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_training_writes_self_describing_checkpoints_and_logs(tmp_path):
    metrics = train(tiny_train_config(tmp_path))
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["step"] == 5 and checkpoint["stage"] == "elbo"
    assert checkpoint["world"]["max_objects"] == 3
    assert [s["name"] for s in checkpoint["shapes"]["shapes"]][:3] == ["cube", "sphere", "cylinder"]
    assert checkpoint["model_config"]["hidden_dim"] == 16
    assert "elbo" in metrics and "count_accuracy" in metrics
    assert 0 < checkpoint["hours"] == metrics["hours"] < 0.1  # the run's wall-clock time
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,stage,name,value" and any(",elbo,elbo," in r for r in rows)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    assert load_checkpoint(tmp_path / "sleep.pt")["step"] == 3  # after the warm start
    shipped = load_checkpoint(tmp_path / "model.pt")
    assert "optimizer" not in shipped  # the shipped file carries weights and configs only


def test_sleep_training_reduces_the_loss(tmp_path):
    config = tiny_train_config(tmp_path, sleep_steps=40, elbo_steps=0, log_every=40, lr=3e-3)
    first = train(tiny_train_config(tmp_path / "a", sleep_steps=1, elbo_steps=0, lr=3e-3))
    last = train(config)
    assert last["loss"] < first["loss"]


def test_resume_continues_exactly_where_the_checkpoint_left(tmp_path):
    straight = tmp_path / "straight"
    train(tiny_train_config(straight, checkpoint_every=1))
    interrupted = tmp_path / "interrupted"
    train(tiny_train_config(interrupted, sleep_steps=3, elbo_steps=0))  # "killed" after step 3
    train(tiny_train_config(interrupted), resume=True)  # the full run, resumed
    a, b = _weights(straight / "model.pt"), _weights(interrupted / "model.pt")
    assert load_checkpoint(interrupted / "model.pt")["step"] == 5
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_broken_checkpoints_are_refused_clearly(tmp_path, tiny_checkpoint):
    missing = tmp_path / "none.pt"
    with pytest.raises(ValueError, match="does not exist"):
        Predictor.from_checkpoint(missing)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match="damaged or not a checkpoint"):
        Predictor.from_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not an air3d checkpoint"):
        Predictor.from_checkpoint(foreign)
    mismatched = tmp_path / "mismatched.pt"
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint["model_config"]["hidden_dim"] = 32
    save_checkpoint(mismatched, {k: v for k, v in checkpoint.items() if k != "format"})
    with pytest.raises(ValueError, match="does not fit its own config"):
        Predictor.from_checkpoint(mismatched)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, tiny_checkpoint):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {}, "step": 1})
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise OSError(28, "No space left on device")  # what a full disk looks like

    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"model": {}, "step": 2, "junk": Unpicklable()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_a_saved_checkpoint_is_readable_by_others_and_keeps_its_mode(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {}, "step": 1})
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    path.chmod(0o640)
    save_checkpoint(path, {"model": {}, "step": 2})
    assert path.stat().st_mode & 0o777 == 0o640


def test_supervised_baseline_trains_and_predicts(tmp_path):
    train(tiny_train_config(tmp_path, elbo_steps=0, model={"kind": "supervised",
          "encoder_channels": [8, 8], "feature_dim": 16, "hidden_dim": 16}))  # fmt: skip
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt")
    results = predictor.infer(torch.rand(2, 3, 64, 64))
    assert len(results) == 2 and all(r.to_json()["count"] <= 3 for r in results)


def test_config_overrides_and_unknown_keys(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("sleep_steps: 7\nmodel: {hidden_dim: 32}\n")
    config = load_train_config(config_file, ["batch_size=4", "model.feature_dim=8"])
    assert (config.sleep_steps, config.batch_size) == (7, 4)
    assert config.model == {"hidden_dim": 32, "feature_dim": 8}
    with pytest.raises(ValueError, match="unknown train config keys"):
        load_train_config(None, ["sleep_stpes=3"])


def test_train_command_runs_one_step(tmp_path, capsys):
    code = main(["train", f"out={tmp_path}", "pool_size=16", "batch_size=4", "sleep_steps=1",
                 "validate_size=4", "model.hidden_dim=16", "model.feature_dim=16"])  # fmt: skip
    assert code == 0 and (tmp_path / "model.pt").exists()
    assert '"out"' in capsys.readouterr().out


def test_torchrun_two_processes_on_cpu(tmp_path):
    """DDP with the gloo backend: both ranks train, rank 0 writes one checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_port=29531", "-m", "air3d.cli", "train", f"out={tmp_path}",
        "pool_size=16", "batch_size=4", "sleep_steps=2", "elbo_steps=1", "elbo_batch_size=2",
        "validate_size=4", "log_every=1", "model.hidden_dim=16", "model.feature_dim=16",
        "model.encoder_channels=[8,8]", "model.glimpse_channels=[8]", "model.glimpse_dim=8",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_checkpoint(tmp_path / "model.pt")["step"] == 3


def test_pool_cache_returns_the_same_pool(tmp_path, world, shapes):
    from air3d.model.scene_pool import ScenePool
    from air3d.renderer import SceneRenderer

    renderer = SceneRenderer(world, shapes)
    first = ScenePool.cached(6, 3, world, shapes, renderer, str(tmp_path))
    assert len(list(tmp_path.glob("pool-*.pt"))) == 1
    second = ScenePool.cached(6, 3, world, shapes, renderer, str(tmp_path))
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.latents.xz, second.latents.xz)
    other_seed = ScenePool.cached(6, 4, world, shapes, renderer, str(tmp_path))
    assert not torch.equal(first.images, other_seed.images)


@pytest.mark.parametrize("extra_steps", [3, 0])
def test_extra_steps_stay_off_after_brief_training_only_when_trained(tmp_path, extra_steps):
    """AIR run for max_objects + 3 steps: trained with extra steps, the steps past the
    prior's maximum are off on every image; trained without, nothing taught them to stop
    (presence starts biased on) and they stay on."""
    config = tiny_train_config(
        tmp_path, pool_size=16, batch_size=16, sleep_steps=25, elbo_steps=0, lr=1e-2,
        lr_floor=1.0, extra_steps=extra_steps, log_every=25, checkpoint_every=25,
    )  # fmt: skip
    train(config)
    predictor = Predictor.from_checkpoint(tmp_path / "model.pt", max_objects=6)
    images = torch.rand(8, 3, 64, 64)
    presence = torch.sigmoid(predictor.model(images, "mean", 6).stack("pres_logit"))[:, 3:]
    assert bool((presence < 0.5).all()) == (extra_steps > 0), presence


def test_init_from_starts_from_the_checkpoint_and_refuses_another_world(tmp_path, tiny_checkpoint):
    config = tiny_train_config(
        tmp_path / "a", init_from=str(tiny_checkpoint), sleep_steps=0, elbo_steps=0, model={}
    )
    train(config)  # no steps: the run's model is the checkpoint's
    start, result = _weights(tiny_checkpoint), _weights(tmp_path / "a" / "model.pt")
    assert all(torch.equal(start[name], result[name]) for name in start)
    other = Path(__file__).parents[2] / "assets" / "worlds" / "tabletop" / "world.yaml"
    moved = tmp_path / "scene.yaml"
    moved.write_text(other.read_text().replace("fov_deg: 44.0", "fov_deg: 40.0"))
    with pytest.raises(ValueError, match="trained in another world"):
        train(tiny_train_config(tmp_path / "b", init_from=str(tiny_checkpoint), world=str(moved)))


def test_training_under_looks_and_lights_runs_and_resumes_exactly(tmp_path):
    looks = dict(probability=1.0, light_probability=0.5, light_chunk=8)
    straight = tmp_path / "straight"
    train(tiny_train_config(straight, augment=looks, checkpoint_every=1))
    interrupted = tmp_path / "interrupted"
    train(tiny_train_config(interrupted, augment=looks, sleep_steps=3, elbo_steps=0))
    train(tiny_train_config(interrupted, augment=looks), resume=True)
    a, b = _weights(straight / "model.pt"), _weights(interrupted / "model.pt")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_init_from_takes_the_shipped_model_and_its_config(tmp_path):
    """The shipped checkpoint was written before some scene-config keys existed (their
    defaults stand in): it still counts as this world, and its model config is taken."""
    shipped = Path(__file__).parents[2] / "assets" / "model" / "default.pt"
    config = tiny_train_config(
        tmp_path, init_from=str(shipped), sleep_steps=0, elbo_steps=0, model={}
    )
    train(config)
    assert _weights(tmp_path / "model.pt").keys() == _weights(shipped).keys()
    assert load_checkpoint(tmp_path / "model.pt")["model_config"]["hidden_dim"] == 256


@pytest.mark.parametrize("refresh_size", [16, 32])  # at step 3 the first pool lives / is gone
def test_a_refreshed_pool_resumes_exactly(tmp_path, refresh_size):
    """Fresh scenes written into the pool every step: a resumed run rebuilds the pool as it
    was (with or without the first draw still in it) and trains exactly as the straight run."""
    refresh = dict(refresh_every=1, refresh_size=refresh_size)
    straight = tmp_path / "straight"
    train(tiny_train_config(straight, checkpoint_every=1, **refresh))
    interrupted = tmp_path / "interrupted"
    train(tiny_train_config(interrupted, sleep_steps=3, elbo_steps=0, **refresh))
    train(tiny_train_config(interrupted, **refresh), resume=True)
    unrefreshed = tmp_path / "unrefreshed"
    train(tiny_train_config(unrefreshed))
    a, b = _weights(straight / "model.pt"), _weights(interrupted / "model.pt")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    c = _weights(unrefreshed / "model.pt")
    assert any(not torch.allclose(a[name], c[name]) for name in a)  # the fresh scenes count


def test_an_interrupted_run_stops_its_refresh_worker(tmp_path, monkeypatch):
    """Ctrl-C or `kill` (the train command turns SIGTERM into the same unwinding) mid-run:
    the pool refresh's worker process is shut down, not left running after the trainer."""
    from air3d.model.pool_refresh import PoolRefresh

    refreshes: list[PoolRefresh] = []
    after_step = PoolRefresh.after_step

    def interrupt_at_step_2(self: PoolRefresh, pool, step: int) -> None:
        refreshes.append(self)
        after_step(self, pool, step)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(PoolRefresh, "after_step", interrupt_at_step_2)
    config = tiny_train_config(tmp_path, refresh_every=1, refresh_size=8, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    refresh = refreshes[-1]
    assert refresh.executor is None and not refresh.pending
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1  # the last one written


def test_pool_refresh_writes_fresh_scenes_over_the_oldest(world, shapes):
    from air3d.model.pool_refresh import PoolRefresh
    from air3d.model.scene_pool import ScenePool
    from air3d.renderer import SceneRenderer

    pool = ScenePool.sample(10, 3, world, shapes, SceneRenderer(world, shapes))
    before = pool.images.clone()
    refresh = PoolRefresh(2, 4, 3, world, shapes)
    for step in range(1, 7):  # blocks 0, 1, 2 written at steps 2, 4, 6
        refresh.after_step(pool, step)
    refresh.close()
    block = refresh.block(2)  # entries 8, 9, then 0, 1 of the ring
    assert torch.equal(pool.images[[8, 9, 0, 1]], block.images)
    assert torch.equal(pool.latents.xz[[8, 9, 0, 1]], block.latents.xz)
    assert torch.equal(pool.images[2:4], refresh.block(0).images[2:])
    assert not torch.equal(pool.images, before)
    with pytest.raises(ValueError, match="refresh_every"):
        PoolRefresh(0, 4, 3, world, shapes)
