"""Fast adversarial training: FGSM with a random start (--train_attack=fgsm_rs),
the cheap IAAT rule on it, and catastrophic-overfitting reporting."""

import json

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from iaat_tf import attacks, run_io
from iaat_tf.cli import train
from iaat_tf import config as cfg
from iaat_tf import validation
from iaat_tf.cli import flags_config
from iaat_tf.training import callbacks
from iaat_tf.config import AttackConfig, ConfigError
from iaat_tf.training import recipe


def test_fgsm_rs_is_one_step_of_1_25_eps_from_the_keyed_uniform_start():
  """Wong et al. 2020: delta ~ U(-eps, eps) (kept in [0, 1]), one step
  delta + 1.25 eps sign(grad), projected onto the ball and [0, 1]."""
  rng = np.random.RandomState(0)
  w = tf.constant(rng.randn(12, 3).astype(np.float32))
  logits_fn = lambda x: tf.reshape(x, [-1, 12]) @ w
  images = tf.constant(rng.rand(6, 2, 2, 3).astype(np.float32))
  labels = tf.constant([0, 1, 2, 0, 1, 2])
  eps = tf.constant([0.0, 0.05, 0.1, 0.2, 0.3, 0.03], tf.float32)
  index = tf.range(10, 16, dtype=tf.int64)
  craft = recipe.make_pgd(logits_fn, AttackConfig.fgsm_rs(), seed=4)
  x_adv = craft(images, labels, eps, index, 7, attacks.Salt.TRAIN).numpy()

  start = attacks.uniform_start(images, eps, index, 7, attacks.Salt.TRAIN, 4)
  with tf.GradientTape() as tape:  # The reference, in float32.
    tape.watch(start)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits_fn(start))
  grad = tape.gradient(loss, start)
  e = eps.numpy()[:, None, None, None]
  step = start.numpy() + 1.25 * e * np.sign(grad.numpy())
  expected = np.clip(step, np.maximum(images.numpy() - e, 0), np.minimum(images.numpy() + e, 1))
  np.testing.assert_allclose(x_adv, expected, atol=1e-6)
  assert np.abs(x_adv - images.numpy()).max() > 0.1  # It moved.


def test_the_flag_builds_the_fgsm_rs_attack_and_bad_combinations_are_refused(tmp_path):
  with flagsaver.flagsaver(
    output_dir=str(tmp_path),
    method="pgd_at",
    train_attack="fgsm_rs",
    pgd_steps=7,
    attack_bn_mode="train",
  ):
    config = flags_config.config_from_flags()
  assert config.attack == AttackConfig.fgsm_rs(bn_mode="train")
  assert config.attack.steps == 1 and config.attack.ratio == 1.25
  validation.validate(config)
  with pytest.raises(ConfigError, match="build it with AttackConfig.fgsm_rs"):
    validation.validate(
      cfg.Config(
        output_dir="x",
        method=cfg.MethodConfig(method="pgd_at"),
        attack=AttackConfig(name="fgsm_rs", steps=3),
      )
    )
  for method in ("iaat", "standard"):
    with pytest.raises(ConfigError, match="trains --method=pgd_at or iaat_cheap"):
      validation.validate(
        cfg.Config(
          output_dir="x", method=cfg.MethodConfig(method=method), attack=AttackConfig.fgsm_rs()
        )
      )


def test_overfitting_watch_marks_the_epoch_line_and_every_later_epoch(tmp_path):
  path = str(tmp_path / "history.csv")
  run_io.write_csv(
    path,
    ["epoch", "val_pgd_acc", "val_clean_acc"],
    [
      {"epoch": 1, "val_pgd_acc": 0.40, "val_clean_acc": 0.80},
      {"epoch": 2, "val_pgd_acc": 0.45, "val_clean_acc": 0.81},
    ],
  )
  lines = []
  watch = callbacks.OverfittingWatch(path, initial_epoch=2, log=lines.append)
  summary = callbacks.EpochSummary(5, log=lines.append)
  watch.on_train_begin()
  marks = []
  for epoch, (pgd, clean) in enumerate([(0.46, 0.82), (0.02, 0.84), (0.30, 0.85)], 2):
    logs = {"loss": 0.1, "val_pgd_acc": pgd, "val_clean_acc": clean}
    watch.on_epoch_end(epoch, logs)
    summary.on_epoch_end(epoch, logs)
    marks.append(logs[callbacks.OverfittingWatch.KEY])
  assert marks == [0.0, 1.0, 1.0]
  warnings = [l for l in lines if l.startswith("iaat_tf: WARNING: catastrophic")]
  assert len(warnings) == 1 and "epoch 4" in warnings[0] and "0.4600" in warnings[0]
  assert "CATASTROPHIC OVERFITTING" in lines[-1] and "CATASTROPHIC" not in lines[0]


@pytest.mark.slow
def test_fast_adaptive_training_end_to_end_with_ramp_and_early_stopping(
  tmp_path, tiny_digits_flags
):
  out = tmp_path / "fast"
  with flagsaver.flagsaver(
    **tiny_digits_flags(
      out,
      method="iaat_cheap",
      train_attack="fgsm_rs",
      eps="0.2",
      warmup_epochs=2,
      eps_ramp_epochs=1,
      gamma="0.05",
      epochs=3,
      validation_fraction=0.25,
      lr_schedule="onecycle",
    )
  ):
    train.run(["iaat_tf.main"])
  results = json.load(open(out / "results.json"))
  assert results["train_attack"] == "fgsm_rs" and results["method"] == "iaat_cheap"
  assert "catastrophic_overfitting" in results  # None, or the collapse found.
  assert results["early_stopping"]["best_epoch"] in (1, 2, 3)
  assert results["history"]["catastrophic_overfitting"] == [
    float(
      results["catastrophic_overfitting"] is not None
      and e >= results["catastrophic_overfitting"]["epoch"]
    )
    for e in (1, 2, 3)
  ]
  config = json.load(open(out / "config.json"))
  assert config["attack"]["name"] == "fgsm_rs" and config["attack"]["steps"] == 1
  table = np.load(out / "eps_table.npy")
  assert len(np.unique(np.round(table, 6))) > 2  # Adapted after the warmup.
