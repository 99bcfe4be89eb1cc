"""Algorithm 2 from the training attack (--alg2_preset=reuse, probe_source="training").

The probe at p is the training attack's own outcome, the probe at p + gamma
a short PGD run started from the training attack's example; the batch trains
at the stored radius and the table takes Algorithm 2's choice. Checked here:
the probes against a plain tape-gradient PGD written out in the test, the
trainer's wiring (trained radius, stored radius, outcomes before the update),
the configuration (preset, flags, refusals). 1 vs 2 replicas: trainer_test;
resume: resume_test; float16 strength: attack_precision_test.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from iaat_tf import attacks, run_io
from iaat_tf.cli import flags_config
from iaat_tf.config import AttackConfig, Config, ConfigError, MethodConfig, alg2_preset
from iaat_tf.validation import validate
from iaat_tf.training import probes, radius, recipe
from iaat_tf.training.trainer import AdversarialTrainer

N, SHAPE, CLASSES = 48, (6, 6, 1), 3
ATTACK = AttackConfig(steps=4, step_ratio=0.25, min_step=0.01)
REUSE = MethodConfig(
  method="iaat",
  gamma=0.05,
  beta=0.5,
  eps_max=0.5,
  eps=0.15,
  warmup_epochs=0,
  probe_source="training",
  probe_extra_steps=1,
)


def _data(seed=0):
  rng = np.random.RandomState(seed)
  x = rng.rand(N, *SHAPE).astype(np.float32)
  y = rng.randint(0, CLASSES, N).astype(np.int32)
  stored = rng.rand(N).astype(np.float32) * 0.3
  return x, y, stored


def _plain_pgd_linf(model, images, labels, x, eps, step, steps):
  """L-inf PGD from x with a plain float32 tape gradient (the reference)."""
  for _ in range(steps):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(x, training=False))
      )
    x = x + step[:, None, None, None] * tf.sign(tape.gradient(loss, x))
    x = tf.clip_by_value(x, images - eps[:, None, None, None], images + eps[:, None, None, None])
    x = tf.clip_by_value(x, 0.0, 1.0)
  return x


@pytest.mark.parametrize("extra_steps", [1, 3])
def test_probes_are_the_training_attack_and_its_extension(extra_steps, tiny_classifier):
  model = tiny_classifier(shape=SHAPE, classes=CLASSES)
  logits_fn = recipe.attack_logits_fn(model)
  x, y, stored = _data()
  craft = recipe.make_pgd(logits_fn, ATTACK, seed=3)
  index = tf.range(N, dtype=tf.int64)
  x_adv = craft(x, y, stored, index, 5, attacks.Salt.TRAIN)
  method = dataclasses.replace(REUSE, probe_extra_steps=extra_steps)
  up, same = _reuse_probes(logits_fn, x, y, x_adv, stored, method)
  correct = lambda z: np.argmax(model(z, training=False).numpy(), 1) == y
  np.testing.assert_array_equal(same.numpy(), correct(x_adv))
  up_eps = tf.constant(stored + 0.05)
  step = tf.maximum(up_eps * 0.25, 0.01)
  x_ref = _plain_pgd_linf(model, tf.constant(x), tf.constant(y), x_adv, up_eps, step, extra_steps)
  np.testing.assert_array_equal(up.numpy(), correct(x_ref))
  # Not vacuous: both outcomes occur at both radii, and the extension breaks
  # examples the training attack left correct.
  assert 0 < same.numpy().sum() < N and 0 < up.numpy().sum() < N
  assert (same.numpy() & ~up.numpy()).any()


def _reuse_probes(logits_fn, x, y, x_adv, stored, method=REUSE):
  """(up_fails, same_fails) of the probes read from the training attack's `x_adv`."""
  spec = probes.ProbeSpec.of(method, ATTACK)
  assert spec.reuse
  return spec.from_training_attack(logits_fn, x, y, x_adv, stored)


def _trainer(classifier, method=REUSE, attack=ATTACK):
  trainer = AdversarialTrainer(classifier, N, method, attack, seed=3, steps_per_epoch=1)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
  return trainer


def test_a_step_trains_at_the_stored_radius_and_stores_algorithm2s_choice(tiny_classifier):
  x, y, stored = _data(1)
  trainer = _trainer(tiny_classifier(shape=SHAPE, classes=CLASSES))
  trainer.eps_table.assign(stored)
  # The outcomes the step must use: the training attack (salt TRAIN, this
  # step) against the model before its update.
  logits_fn = recipe.attack_logits_fn(trainer.classifier)
  craft = recipe.make_pgd(logits_fn, ATTACK, seed=3)
  index = tf.range(N, dtype=tf.int64)
  clean_ok = attacks.is_correct(logits_fn(x), y)
  x_adv = craft(x, y, stored, index, tf.constant(0, tf.int64), attacks.Salt.TRAIN)
  up, same = _reuse_probes(logits_fn, x, y, x_adv, stored)
  expected = radius.algorithm2_update(
    stored, up, same, clean_ok, gamma=0.05, beta=0.5, eps_max=0.5
  ).numpy()
  before = [w.numpy() for w in trainer.classifier.weights]
  logs = trainer.train_on_batch({"image": x, "index": np.arange(N)}, y, return_dict=True)
  np.testing.assert_allclose(trainer.eps_table.numpy(), expected, atol=1e-7)
  # Trained at the stored radius (0 for S-, which train on the clean image).
  trained = (stored * clean_ok.numpy()).mean()
  assert logs["eps_mean"] == pytest.approx(trained, rel=1e-5)
  assert not np.allclose(expected, stored)  # The table moved...
  assert (
    max(
      np.abs(w.numpy() - b).max()  # ...and so did the weights.
      for w, b in zip(trainer.classifier.weights, before)
    )
    > 1e-4
  )


def test_warmup_ignores_the_probes_and_stores_the_warmup_radius(tiny_classifier):
  x, y, _ = _data(2)
  classifier = lambda: tiny_classifier(shape=SHAPE, classes=CLASSES)
  trainer = _trainer(classifier(), dataclasses.replace(REUSE, warmup_epochs=1))
  trainer.train_on_batch({"image": x, "index": np.arange(N)}, y)
  clean_ok = attacks.is_correct(recipe.attack_logits_fn(classifier())(x), y).numpy()
  np.testing.assert_allclose(trainer.eps_table.numpy(), 0.15 * clean_ok)


def test_preset_and_flags():
  assert alg2_preset("reuse", 10, 0.2) == {"probe_source": "training", "probe_extra_steps": 2}
  assert alg2_preset("reuse", 5, 0.25)["probe_extra_steps"] == 1
  with flagsaver.flagsaver():
    flags.FLAGS(["main", "--output_dir=/tmp/x", "--pgd_steps=10", "--alg2_preset=reuse"])
    method = flags_config.config_from_flags(flags.FLAGS).method
  assert method.probe_source == "training" and method.probe_extra_steps == 2
  assert not probes.is_exact_algorithm2(method)
  with flagsaver.flagsaver():
    flags.FLAGS(["main", "--output_dir=/tmp/x", "--alg2_preset=reuse", "--probe_extra_steps=3"])
    assert flags_config.config_from_flags(flags.FLAGS).method.probe_extra_steps == 3


def test_the_preset_keeps_its_name_in_config_json_and_older_runs_load_and_resume(tmp_path):
  argv = ["main", f"--output_dir={tmp_path}", "--pgd_steps=10", "--alg2_preset=reuse"]
  with flagsaver.flagsaver():
    flags.FLAGS(argv)
    config = flags_config.config_from_flags(flags.FLAGS)
  saved = config.to_dict()
  assert saved["method"]["alg2_preset"] == "reuse" and saved["method"]["probe_source"] == "training"
  assert run_io.config_from_dict(saved) == config
  # A config.json written before the preset was a field: the same values, no name.
  del saved["method"]["alg2_preset"]
  older = run_io.config_from_dict(saved)
  assert older.method.alg2_preset == "exact" and older.method.probe_extra_steps == 2
  run_io.write_json(str(tmp_path / run_io.CONFIG), saved)
  run_io.check_resume_compatible(config)  # The name changes no number: it may resume.


@pytest.mark.parametrize(
  "options,match",
  [
    ({"loss": "trades"}, "KL attack"),
    ({"probe_steps": 2}, "--probe_steps would do nothing"),
    (
      {"probe_early_stop": "example", "probe_only_needed": True},
      "--probe_early_stop and --probe_only_needed",
    ),
  ],
)
def test_combinations_that_would_mean_nothing_are_refused(options, match, tiny_classifier):
  method = dataclasses.replace(REUSE, **options)
  with pytest.raises(ConfigError, match=match) as error:
    validate(Config(output_dir="/tmp/x", method=method))
  assert "\n" not in str(error.value)
  if "loss" in options:  # The trainer refuses it too (no silent KL-attack probes).
    with pytest.raises(ConfigError, match=match):
      _trainer(tiny_classifier(shape=SHAPE, classes=CLASSES), method)
  # The same options with the attacks' probes are fine.
  validate(Config(output_dir="/tmp/x", method=dataclasses.replace(method, probe_source="attacks")))


def _bn_classifier(seed=0):
  """BatchNorm first, momentum 0: the running statistics are those of the
  last training-mode batch, so judging after the training forward pass
  (instead of before) changes inference-mode outcomes."""
  keras.utils.set_random_seed(seed)
  return keras.Sequential(
    [
      keras.Input(SHAPE),
      keras.layers.BatchNormalization(momentum=0.0),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation="relu"),
      keras.layers.Dense(CLASSES),
    ]
  )


def _bn_trainer(method, attack):
  trainer = AdversarialTrainer(_bn_classifier(), N, method, attack, seed=3, steps_per_epoch=1)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
  return trainer


def test_reuse_and_cheap_judge_the_model_the_attack_attacked_under_batchnorm():
  """Inference-mode outcomes (reuse's probes, the cheap rule's signal) are
  taken before the step's training forward pass moves BatchNorm's running
  statistics: the table equals the outcomes computed on the model as it was."""
  x, y, stored = _data(3)
  x = x * 0.5 + 0.4  # Far from the initial running statistics (mean 0, var 1).
  index = tf.range(N, dtype=tf.int64)
  zero = tf.constant(0, tf.int64)
  cheap = MethodConfig(method="iaat_cheap", eps=0.15, gamma=0.05, eps_max=0.5, warmup_epochs=0)
  for method in (REUSE, cheap):
    trainer = _bn_trainer(method, ATTACK)
    trainer.eps_table.assign(stored)
    logits_fn = recipe.attack_logits_fn(trainer.classifier)  # Inference mode.
    craft = recipe.make_pgd(logits_fn, ATTACK, seed=3)
    clean_ok = attacks.is_correct(logits_fn(x), y)
    if method is REUSE:
      x_adv = craft(x, y, stored, index, zero, attacks.Salt.TRAIN)
      up, same = _reuse_probes(logits_fn, x, y, x_adv, stored)
      expected = radius.algorithm2_update(
        stored, up, same, clean_ok, gamma=0.05, beta=0.5, eps_max=0.5
      ).numpy()
    else:
      eps = radius.zero_if_misclassified(stored, clean_ok)
      x_adv = craft(x, y, eps, index, zero, attacks.Salt.TRAIN)
      x_train = recipe.training_images(x, x_adv, clean_ok)
      failed = attacks.is_correct(logits_fn(x_train), y)  # Inference mode.
      expected = radius.cheap_update(stored, failed, clean_ok, gamma=0.05, eps_max=0.5).numpy()
    trainer.train_on_batch({"image": x, "index": np.arange(N)}, y)
    np.testing.assert_allclose(
      trainer.eps_table.numpy(), expected, atol=1e-7, err_msg=method.method
    )
    # The training forward pass did move the running statistics: judged
    # after it, the same inference-mode pass would see another model.
    moved = trainer.classifier.layers[0].moving_mean.numpy()
    assert abs(float(moved[0])) > 0.3, method.method


def test_train_mode_reuse_leaves_the_training_batchs_running_statistics():
  """--attack_bn_mode=train: every attack pass moves the running statistics;
  the step's last train-mode pass is its training forward pass, as in the
  authors' order (probes and training attack first), not the probe's."""
  x, y, stored = _data(4)
  x = x * 0.5 + 0.4
  attack = dataclasses.replace(ATTACK, bn_mode="train")
  method = dataclasses.replace(REUSE, s_minus="adversarial")  # x_train = x_adv.
  trainer = _bn_trainer(method, attack)
  trainer.eps_table.assign(stored)
  # Train-mode outcomes use batch statistics, so the training attack's
  # example is the same on a copy of the model.
  copy = _bn_classifier()
  craft = recipe.make_pgd(recipe.attack_logits_fn(copy, "train"), attack, seed=3)
  x_adv = craft(
    x, y, stored, tf.range(N, dtype=tf.int64), tf.constant(0, tf.int64), attacks.Salt.TRAIN
  ).numpy()
  trainer.train_on_batch({"image": x, "index": np.arange(N)}, y)
  bn = trainer.classifier.layers[0]
  np.testing.assert_allclose(bn.moving_mean.numpy(), [x_adv.mean()], atol=1e-5)
