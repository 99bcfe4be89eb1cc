"""pytest setup shared by every test.

* Two logical CPU devices, configured before TensorFlow starts, so tests can
  run `MirroredStrategy` with 2 replicas on a CPU-only machine.
* absl FLAGS (the training command's, cli/flags_config.define_flags) marked as parsed, so flag
  defaults can be read and `flagsaver` used outside `app.run`.
* Two tiers: plain `python -m pytest tests` runs the unit tier; the
  end-to-end tests (marked `slow`: the CLI in a subprocess, whole training
  runs, several processes) run with `--run-slow` (both tiers) or when `-m`
  names them (`-m slow`: that tier alone).
* Shared fixtures: scikit-learn's digits, and an undefended MLP trained on
  them (the attack tests' target); `tiny_classifier`, a factory of small
  seeded classifiers; `tiny_digits_flags`, the flags of a tiny digits run.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # Already initialised (e.g. imported twice).
  pass


from iaat_tf.cli import flags_config  # noqa: E402  # pylint: disable=g-import-not-at-top

flags_config.define_flags()
flags.FLAGS.mark_as_parsed()


def pytest_addoption(parser):
  parser.addoption(
    "--run-slow",
    action="store_true",
    default=False,
    help="also run the end-to-end tier (tests marked slow)",
  )


def pytest_collection_modifyitems(config, items):
  """Leaves the slow tier out unless --run-slow or an -m expression asks."""
  if config.getoption("--run-slow") or config.getoption("markexpr"):
    return
  slow = [item for item in items if item.get_closest_marker("slow")]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def digits():
  """(x [1797, 8, 8, 1] float32 in [0, 1], y int64) of scikit-learn's digits."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  data = load_digits()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  return x, data.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_mlp(digits):
  """An undefended MLP trained for a few epochs on the first 1,400 digits."""
  import keras  # pylint: disable=g-import-not-at-top

  x, y = digits
  keras.utils.set_random_seed(0)
  net = keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      keras.layers.Flatten(),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10),
    ]
  )
  net.compile(
    keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  )
  net.fit(x[:1400], y[:1400], batch_size=128, epochs=15, verbose=0)
  return net


def _tiny_classifier(seed=0, *, shape=(6, 6, 1), classes=3, hidden=16, conv=0, l2=0.0):
  """A small Keras classifier, its weights drawn after `keras.utils.set_random_seed(seed)`:
  [Conv2D(conv, 3), BatchNormalization, ReLU] (conv > 0) -> Flatten (images)
  -> [Dense(hidden, relu)] (hidden > 0) -> Dense(classes) (with L2(l2) on its
  kernel when l2 > 0)."""
  import keras  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(seed)
  layers = [keras.Input(shape)]
  if conv:
    layers += [keras.layers.Conv2D(conv, 3), keras.layers.BatchNormalization(), keras.layers.ReLU()]
  if len(shape) > 1:
    layers.append(keras.layers.Flatten())
  if hidden:
    layers.append(keras.layers.Dense(hidden, activation="relu"))
  regularizer = keras.regularizers.L2(l2) if l2 else None
  layers.append(keras.layers.Dense(classes, kernel_regularizer=regularizer))
  return keras.Sequential(layers)


@pytest.fixture(scope="session")
def tiny_classifier():
  """The factory `tiny_classifier(seed=0, *, shape=(6, 6, 1), classes=3,
  hidden=16, conv=0, l2=0.0)`: a fresh small classifier per call (see
  `_tiny_classifier`); the same arguments give the same weights."""
  return _tiny_classifier


def _tiny_digits_flags(output_dir, **flags_):
  """flagsaver keyword arguments of a tiny training run on the bundled
  digits: the small CNN, 64-image batches of the first 256 training images,
  2-step validation PGD on 64 test images, quiet, no export, writing to
  `output_dir`; `flags_` add flags or replace these."""
  return {
    "dataset": "digits",
    "model": "small_cnn",
    "batch_size": 64,
    "max_train_examples": 256,
    "eval_pgd_steps": 2,
    "val_examples": 64,
    "output_dir": str(output_dir),
    "verbose": 0,
    "export": False,
    **flags_,
  }


@pytest.fixture(scope="session")
def tiny_digits_flags():
  """The function `tiny_digits_flags(output_dir, **flags)` -> flagsaver
  keyword arguments of a tiny digits run: `with
  flagsaver.flagsaver(**tiny_digits_flags(out, method="pgd_at")):`."""
  return _tiny_digits_flags


def _frontier_run(setting, seed, clean, autoattack):
  """What `frontier_jobs.read_run` returns for `setting`'s run at `seed`
  (AutoAttack at 0.2 on digits' 359 test images, chance 0.1), with the given
  accuracies: a run the frontier never trained."""
  return {
    "setting": setting.name,
    "method": setting.method,
    "flags": list(setting.flags),
    "seed": seed,
    "run_dir": "",
    "clean": clean,
    "autoattack": autoattack,
    "aa_eps": 0.2,
    "norm": "linf",
    "n_examples": 359,
    "chance": 0.1,
  }


@pytest.fixture(scope="session")
def frontier_run_record():
  """The function `frontier_run_record(setting, seed, clean, autoattack)` ->
  a run's numbers as the frontier reads them, for tests that replace
  `frontier_run.train_and_evaluate` (see `_frontier_run`)."""
  return _frontier_run
