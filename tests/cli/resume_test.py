"""Resuming a killed run: `python -m iaat_tf.main` after SIGKILL, and restore fidelity.

The end-to-end test kills a run (SIGKILL) in the middle of the epoch after
its first checkpoint, restarts it with the same flags and checks that it
resumes and finishes with the same eps table, weights and optimizer step as
an uninterrupted run: once with `--shuffle_buffer=1` (the same example order
every epoch), once with the default whole-set shuffle and `--augment`, whose
order and crops/flips are pure functions of (seed, epoch) and (seed, example
id, epoch). The in-process test checks the restored state itself (weights,
optimizer slots and step, eps table, epoch) against what was saved.
"""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import main_process
from iaat_tf import data
from iaat_tf.runs import training_steps
from iaat_tf.training import callbacks, runtime
from iaat_tf.config import AttackConfig, Config, ConfigError, DataConfig, MethodConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS, TRAIN, BATCH = 6, 640, 64
STEPS_PER_EPOCH = TRAIN // BATCH
ARGS = [
  f"--flagfile={os.path.join(REPO, 'flags', 'quickstart.flags')}",
  f"--epochs={EPOCHS}",
  "--warmup_epochs=2",
  f"--max_train_examples={TRAIN}",
  f"--batch_size={BATCH}",
  "--pgd_steps=20",
  "--shuffle_buffer=1",
  "--val_examples=64",
  "--eval_pgd_steps=2",
  "--export=false",
  "--verbose=2",
  "--seed=3",
]
TIMEOUT = 180


def _start(output_dir: str, extra=()) -> subprocess.Popen:
  return main_process.start([*ARGS, *extra], output_dir)


def _wait(proc: subprocess.Popen) -> str:
  return main_process.wait(proc, TIMEOUT)


def _results(output_dir: str) -> dict:
  with open(os.path.join(output_dir, "results.json")) as f:
    return json.load(f)


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
  _kill_resume_and_compare(tmp_path)


@pytest.mark.slow
def test_killed_augmented_shuffled_run_resumes_exactly(tmp_path):
  # Default (whole-set) shuffle and stateless crops/flips keyed by
  # (seed, example id, epoch): the restarted process sees the same batches.
  _kill_resume_and_compare(tmp_path, ["--augment", "--shuffle_buffer=0"])


@pytest.mark.slow
def test_killed_run_with_probes_from_the_training_attack_resumes_exactly(tmp_path):
  # --alg2_preset=reuse keeps no state beyond the table and the weights.
  _kill_resume_and_compare(tmp_path, ["--alg2_preset=reuse"])


def _kill_resume_and_compare(tmp_path, extra=()):
  reference_dir, run_dir = str(tmp_path / "reference"), str(tmp_path / "run")
  reference = _start(reference_dir, extra)  # Runs alongside the interrupted run.
  first = _start(run_dir, extra)
  first_out, killed_at = main_process.kill_after_first_checkpoint(
    first, run_dir, TIMEOUT, settle=0.5
  )
  assert not os.path.exists(os.path.join(run_dir, "results.json"))
  assert 1 <= killed_at < EPOCHS, first_out[-2000:]

  second_out = _wait(_start(run_dir, extra))
  assert "resumed from" in second_out, second_out[-2000:]
  results = _results(run_dir)
  assert results["resumed_from_epoch"] == killed_at
  # All epochs, before and after the kill (issue 9), numbered from 1.
  assert results["history"]["epoch"] == list(range(1, EPOCHS + 1))
  assert len(results["history"]["loss"]) == EPOCHS
  with open(os.path.join(run_dir, "history.csv")) as f:
    assert [r.split(",")[0] for r in f.read().split()[1:]] == [str(e) for e in range(1, EPOCHS + 1)]
  assert results["train_seconds"] > 0
  _wait(reference)

  main_process.assert_resumed_like_uninterrupted(run_dir, reference_dir, EPOCHS * STEPS_PER_EPOCH)


def _small_config(output_dir: str) -> Config:
  return Config(
    output_dir=output_dir,
    data=DataConfig(dataset="digits", max_train_examples=128, batch_size=32),
    method=MethodConfig(method="iaat", eps=0.1, warmup_epochs=1, gamma=0.02, eps_max=0.3),
    attack=AttackConfig(steps=2, step_ratio=0.25, min_step=0.01),
    train=TrainConfig(learning_rate=0.05, epochs=3),
  )


def _snapshot(trainer) -> dict:
  # Positional: variable paths differ between optimizer instances (sgd, sgd_1).
  optimizer = [v.numpy() for v in trainer.optimizer.variables]
  return {
    "weights": [w.numpy() for w in trainer.classifier.weights],
    "optimizer": optimizer,
    "eps_table": trainer.eps_table.numpy(),
    "epoch": int(trainer.epoch.numpy()),
    "iterations": int(trainer.optimizer.iterations.numpy()),
  }


def _trainer_and_manager(config: Config, seed: int):
  keras.utils.set_random_seed(seed)
  datasets = data.load_datasets(config.data)
  steps = datasets.info.num_train // config.data.batch_size
  trainer = training_steps.build_trainer(config, datasets.info, steps, tf.distribute.get_strategy())
  manager = tf.train.CheckpointManager(
    runtime.make_checkpoint(trainer), os.path.join(config.output_dir, "ckpt"), max_to_keep=2
  )
  return trainer, manager, datasets, steps


@pytest.mark.slow
def test_restore_latest_brings_back_everything_saved(tmp_path):
  config = _small_config(str(tmp_path))
  trainer, manager, datasets, steps = _trainer_and_manager(config, seed=0)
  epoch_callbacks = [callbacks.CheckpointCallback(manager)]
  trainer.fit(datasets.train, epochs=2, callbacks=epoch_callbacks, verbose=0)
  saved = _snapshot(trainer)
  assert saved["epoch"] == 2 and saved["iterations"] == 2 * steps
  assert (saved["eps_table"] > 0).any()

  # A fresh process would build from another initialisation: it must all be replaced.
  fresh, fresh_manager, datasets, _ = _trainer_and_manager(config, seed=1)
  assert not np.array_equal(fresh.classifier.weights[1].numpy(), saved["weights"][1])
  assert runtime.restore_latest(fresh, fresh_manager) == 2
  restored = _snapshot(fresh)
  assert restored["epoch"] == 2 and restored["iterations"] == 2 * steps
  np.testing.assert_array_equal(restored["eps_table"], saved["eps_table"])
  for a, b in zip(restored["weights"], saved["weights"]):
    np.testing.assert_array_equal(a, b)
  assert len(restored["optimizer"]) == len(saved["optimizer"]) > 2
  for a, b in zip(restored["optimizer"], saved["optimizer"]):  # Step, momenta.
    np.testing.assert_array_equal(a, b)

  # Training continues from the restored step, and the first epoch after the
  # resume reads the restored radii (the warmup is over: epoch 2 adapts).
  fresh.fit(
    datasets.train,
    epochs=3,
    initial_epoch=2,
    callbacks=[callbacks.CheckpointCallback(fresh_manager)],
    verbose=0,
  )
  assert int(fresh.optimizer.iterations.numpy()) == 3 * steps
  assert fresh_manager.latest_checkpoint.endswith("ckpt-3")
  # One adaptive step moves each radius by beta * (selected - stored), with
  # selected in {stored + gamma, stored, stored - gamma, 0}: small moves from
  # the restored table (a table restarted from zeros would stay <= beta * gamma).
  table = fresh.eps_table.numpy()
  moved = table - saved["eps_table"]
  beta, gamma = config.method.beta, config.method.gamma
  assert np.abs(moved).max() > 0
  assert np.all(np.abs(moved) <= beta * (saved["eps_table"] + gamma) + 1e-6)
  assert table.max() > 0.5 * config.method.eps > beta * gamma


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
  """A checkpoint cut short (full disk, interrupted copy) costs one epoch and
  one warning line; with no readable checkpoint left, one error line."""
  config = _small_config(str(tmp_path))
  trainer, manager, datasets, _ = _trainer_and_manager(config, seed=0)
  trainer.fit(
    datasets.train, epochs=2, callbacks=[callbacks.CheckpointCallback(manager)], verbose=0
  )
  first, last = manager.checkpoints
  data_files = lambda prefix: [
    os.path.join(os.path.dirname(prefix), f)
    for f in os.listdir(os.path.dirname(prefix))
    if f.startswith(os.path.basename(prefix) + ".data")
  ]
  for path in data_files(last):
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  lines = []
  fresh, fresh_manager, _, _ = _trainer_and_manager(config, seed=1)
  assert runtime.restore_latest(fresh, fresh_manager, lines.append) == 1
  assert len(lines) == 1 and "WARNING" in lines[0] and last in lines[0]
  assert first in lines[0] and "\n" not in lines[0]
  for path in data_files(first):
    with open(path, "r+b") as f:
      f.truncate(10)
  fresh, fresh_manager, _, _ = _trainer_and_manager(config, seed=1)
  with pytest.raises(ConfigError, match="no readable checkpoint") as error:
    runtime.restore_latest(fresh, fresh_manager, lines.append)
  assert "--overwrite" in str(error.value) and "\n" not in str(error.value)
