"""Algorithm 2's probe options (probes.fast_probes) and --alg2_preset.

A small dense classifier (no convolution: batch composition cannot change
the float arithmetic) gives a mix of robust and broken examples, so the
options that must not change Algorithm 2's decisions are compared exactly.
"""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from iaat_tf.cli import flags_config
from iaat_tf import attacks
from iaat_tf.training import probes, radius, recipe
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import AttackConfig, Config, ConfigError, MethodConfig, TrainConfig, alg2_preset
from iaat_tf.validation import validate

N, SHAPE, CLASSES = 48, (6, 6, 1), 3
ATTACK = AttackConfig(steps=4, step_ratio=0.25, min_step=0.01)
METHOD = MethodConfig(gamma=0.05, beta=0.5, eps_max=0.5)
STEP = tf.constant(7, tf.int64)


@pytest.fixture(scope="module", params=["linf", "l2"])
def batch(request, tiny_classifier):
  """Every test runs in both norms (L2 radii 4x larger: a ball of similar
  strength on these 36-pixel images)."""
  rng = np.random.RandomState(0)
  x = rng.rand(N, *SHAPE).astype(np.float32)
  y = rng.randint(0, CLASSES, N).astype(np.int32)
  logits_fn = recipe.attack_logits_fn(tiny_classifier(shape=SHAPE, classes=CLASSES))
  norm = request.param
  attack = dataclasses.replace(ATTACK, norm=norm)
  craft = recipe.make_pgd(logits_fn, attack, seed=3)
  scale = 4.0 if norm == "l2" else 1.0
  stored = tf.constant(rng.rand(N).astype(np.float32) * 0.3 * scale)
  index = tf.range(100, 100 + N, dtype=tf.int64)
  clean_ok = attacks.is_correct(logits_fn(x), y)
  return craft, logits_fn, x, y, index, stored, clean_ok, attack


def _radii(batch, **options):
  craft, logits_fn, x, y, index, stored, clean_ok, attack = batch
  method = dataclasses.replace(METHOD, **options)
  up, same = probes.ProbeSpec.of(method, attack, seed=3).outcomes(
    logits_fn, x, y, index=index, stored=stored, clean_ok=clean_ok, step=STEP, craft=craft
  )
  return radius.algorithm2_update(
    stored, up, same, clean_ok, gamma=method.gamma, beta=method.beta, eps_max=method.eps_max
  ).numpy()


def _probes(batch, **options):
  """The probe options' outcomes (never the training attack's: `craft` unused)."""
  _, logits_fn, x, y, index, stored, clean_ok, attack = batch
  spec = probes.ProbeSpec.of(dataclasses.replace(METHOD, **options), attack, seed=3)
  assert not spec.exact
  up, same = spec.outcomes(
    logits_fn,
    x,
    tf.constant(y),
    index=index,
    stored=stored,
    clean_ok=clean_ok,
    step=STEP,
  )
  return up.numpy(), same.numpy()


def test_default_is_the_exact_algorithm_with_two_training_attacks(batch):
  craft, logits_fn, x, y, index, stored, clean_ok, _ = batch
  survives = lambda eps, salt: attacks.is_correct(logits_fn(craft(x, y, eps, index, STEP, salt)), y)
  up = survives(stored + 0.05, attacks.Salt.PROBE_UP)
  same = survives(stored, attacks.Salt.PROBE_SAME)
  expected = radius.algorithm2_update(
    stored, up, same, clean_ok, gamma=0.05, beta=0.5, eps_max=0.5
  ).numpy()
  np.testing.assert_array_equal(_radii(batch), expected)
  # Not vacuous: the batch has robust and broken examples at both radii.
  assert 0 < up.numpy().sum() < N and 0 < same.numpy().sum() < N
  assert probes.is_exact_algorithm2(METHOD, ATTACK)
  assert probes.is_exact_algorithm2(dataclasses.replace(METHOD, probe_steps=4), ATTACK)


def test_own_probe_loop_with_k_steps_reproduces_the_training_attack(batch):
  # probe_batched runs the probe on the PGD core (pgd.PGD.run); with k steps
  # and no early stop it is the exact algorithm (same random starts, same steps).
  np.testing.assert_array_equal(_radii(batch, probe_batched=True), _radii(batch))


@pytest.mark.parametrize("steps", [1, 2])
def test_batched_probes_equal_unbatched_probes(batch, steps):
  a = _probes(batch, probe_steps=steps)
  b = _probes(batch, probe_steps=steps, probe_batched=True)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
  "options", [{}, {"probe_steps": 2}, {"probe_batched": True}, {"probe_early_stop": "example"}]
)
def test_probing_only_needed_examples_keeps_every_decision(batch, options):
  np.testing.assert_array_equal(
    _radii(batch, **options), _radii(batch, probe_only_needed=True, **options)
  )


def test_early_stop_modes_agree_and_only_add_successes(batch):
  exact_up, exact_same = _probes(batch, probe_batched=True)  # final iterate
  for mode in ("batch", "example"):
    up, same = _probes(batch, probe_early_stop=mode)
    # Any-iterate success includes final-iterate success: fails can only shrink.
    assert not np.any(up & ~exact_up) and not np.any(same & ~exact_same)
  np.testing.assert_array_equal(
    _probes(batch, probe_early_stop="batch"), _probes(batch, probe_early_stop="example")
  )


def test_fewer_or_shorter_probe_steps_are_weaker_attacks(batch):
  # Broken examples (not fails) are the attack's strength: k steps break at
  # least as many as 1 short step here, and the radii differ somewhere.
  up_k, _ = _probes(batch, probe_batched=True)
  up_1, _ = _probes(batch, probe_steps=1)
  assert (~up_k).sum() >= (~up_1).sum()
  assert not np.array_equal(_radii(batch, probe_steps=1), _radii(batch))


def test_the_spec_reads_each_preset_once():
  attack = AttackConfig(steps=10, step_ratio=0.2, min_step=0.01, norm="l2")
  exact = probes.ProbeSpec.of(MethodConfig(gamma=0.05), attack, seed=3)
  assert exact.exact and not exact.reuse and exact.gamma == 0.05
  assert exact.probe == probes.training_attack(attack, seed=3)  # The training attack.
  fast = probes.ProbeSpec.of(MethodConfig(**alg2_preset("fast", 10, 0.2)), attack, seed=3)
  assert not fast.exact and fast.only_needed and not fast.batched
  assert (fast.probe.steps, fast.probe.early_stop, fast.probe.norm) == (3, "example", "l2")
  assert fast.probe.step_ratio == pytest.approx(0.2 * 10 / 3) and fast.probe.min_step == 0.01
  reuse = probes.ProbeSpec.of(MethodConfig(**alg2_preset("reuse", 10, 0.2)), attack, seed=3)
  assert reuse.reuse and not reuse.exact
  assert (reuse.probe.steps, reuse.probe.step_ratio, reuse.probe.random_start) == (2, 0.2, False)
  # Not iaat: nothing is reused.
  cheap = MethodConfig(method="iaat_cheap", probe_source="training")
  assert not probes.ProbeSpec.of(cheap, attack).reuse


def test_preset_values_scale_with_k():
  assert alg2_preset("exact", 10, 0.2) == {}
  fast = alg2_preset("fast", 10, 0.2)
  assert fast["probe_steps"] == 3 and fast["probe_early_stop"] == "example"
  assert fast["probe_step_ratio"] * 3 == pytest.approx(10 * 0.2)  # same distance
  assert alg2_preset("fast", 5, 0.25)["probe_steps"] == 2
  assert alg2_preset("fast", 1, 0.25)["probe_steps"] == 1
  with pytest.raises(ConfigError, match="alg2_preset"):
    alg2_preset("fastest", 10, 0.2)


def test_with_alg2_preset_fills_the_presets_values_and_given_fields_win():
  attack = AttackConfig(steps=10, step_ratio=0.2)
  for name in ("exact", "fast", "reuse"):
    method = MethodConfig(alg2_preset=name).with_alg2_preset(attack)
    assert method == MethodConfig(alg2_preset=name, **alg2_preset(name, 10, 0.2))
  mine = MethodConfig(alg2_preset="fast", probe_steps=4, probe_early_stop="none")
  method = mine.with_alg2_preset(attack, given=("probe_steps", "probe_early_stop"))
  assert method.probe_steps == 4 and method.probe_early_stop == "none"  # Given: kept.
  assert method.probe_step_ratio == pytest.approx(0.2 * 10 / 4) and method.probe_only_needed


def test_preset_flag_and_explicit_overrides():
  with flagsaver.flagsaver():
    flags.FLAGS(
      [
        "main",
        "--output_dir=/tmp/x",
        "--pgd_steps=10",
        "--pgd_step_ratio=0.2",
        "--alg2_preset=fast",
        "--probe_steps=4",
      ]
    )
    method = flags_config.config_from_flags(flags.FLAGS).method
  assert method.probe_steps == 4  # explicit flag wins
  assert method.probe_step_ratio == pytest.approx(0.2 * 10 / 4)  # same distance
  assert method.probe_only_needed and method.probe_early_stop == "example"
  with flagsaver.flagsaver():
    flags.FLAGS(["main", "--output_dir=/tmp/x"])
    method = flags_config.config_from_flags(flags.FLAGS).method
  assert probes.is_exact_algorithm2(method)


def test_subset_probes_are_refused_under_whole_step_xla():
  config = Config(
    output_dir="/tmp/x",
    train=TrainConfig(jit_compile="step"),
    method=MethodConfig(probe_early_stop="example"),
  )
  with pytest.raises(ConfigError, match="jit_compile=step"):
    validate(config)
  validate(dataclasses.replace(config, method=MethodConfig(probe_early_stop="batch")))
  with pytest.raises(ConfigError, match="probe_early_stop"):
    validate(dataclasses.replace(config, method=MethodConfig(probe_early_stop="soon")))


@pytest.mark.parametrize(
  "probe",
  [{"probe_only_needed": True}, {"probe_early_stop": "example"}, {"probe_batched": True}, "fast"],
)
def test_subset_probes_are_refused_with_train_mode_batchnorm(probe):
  """Train-mode BatchNorm on a subset or a doubled batch would make every
  outcome depend on the other examples and bias the running statistics."""
  attack = AttackConfig(bn_mode="train")
  method = (
    MethodConfig(**alg2_preset("fast", 10, 0.2)) if probe == "fast" else MethodConfig(**probe)
  )
  with pytest.raises(ConfigError, match="attack_bn_mode=train"):
    validate(Config(output_dir="/tmp/x", attack=attack, method=method))
  with pytest.raises(ConfigError, match="attack_bn_mode=inference"):
    AdversarialTrainer(
      keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), 8, method, attack
    )
  # Fewer probe steps on the whole batch, and inference mode, stay allowed.
  validate(Config(output_dir="/tmp/x", attack=attack, method=MethodConfig(probe_steps=3)))
  validate(Config(output_dir="/tmp/x", method=method))


_REPLICAS_SCRIPT = r"""
import json, sys
import numpy as np, tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import AttackConfig, MethodConfig, alg2_preset

N, SHAPE, CLASSES = 48, (6, 6, 1), 3
rng = np.random.RandomState(4)
x = rng.rand(N, *SHAPE).astype(np.float32)
y = rng.randint(0, CLASSES, N).astype(np.int64)



def train(strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                   keras.layers.Dense(16, activation="relu"),
                                   keras.layers.Dense(CLASSES)])
    trainer = AdversarialTrainer(
        classifier, N,
        MethodConfig(method="iaat", eps=0.1, warmup_epochs=1, gamma=0.03, beta=0.5,
                     eps_max=0.3, **alg2_preset("fast", 3, 0.25)),
        AttackConfig(steps=3, step_ratio=0.25, min_step=0.01), seed=3)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(N)}, y))
  trainer.fit(ds.shuffle(N, seed=11).batch(16, drop_remainder=True), epochs=3,
              verbose=0)
  return trainer.eps_table.numpy()


devices = tf.config.list_logical_devices("CPU")
one = train(tf.distribute.OneDeviceStrategy(devices[0].name))
two = train(tf.distribute.MirroredStrategy([d.name for d in devices[:2]]))
print(json.dumps({"one": one.tolist(), "two": two.tolist()}))
"""


@pytest.mark.slow
def test_fast_preset_one_and_two_replicas_give_the_same_eps_table():
  # A fresh process: MirroredStrategy collectives of different models clash
  # within one process (other test files train mirrored models too).
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run(
    [sys.executable, "-c", _REPLICAS_SCRIPT],
    cwd=repo,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "2"},
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  tables = json.loads(proc.stdout.strip().splitlines()[-1])
  one, two = np.array(tables["one"]), np.array(tables["two"])
  np.testing.assert_allclose(one, two, atol=1e-6)
  assert len(np.unique(np.round(one, 4))) > 2  # Radii moved apart after warmup.
