"""The public API: `import iaat_tf` names, lazy loading, `with_example_ids`, `fit`."""

import inspect
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import iaat_tf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_public_name_resolves_and_is_documented():
  assert "AdversarialTrainer" in dir(iaat_tf)
  for name in iaat_tf.__all__:
    value = getattr(iaat_tf, name)
    assert inspect.getdoc(value), f"iaat_tf.{name} has no docstring"
  assert iaat_tf.TrainingRecipe.radii_before_attack is not None
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    iaat_tf.nope  # noqa: B018  pylint: disable=pointless-statement


def test_cli_import_does_not_load_tensorflow():
  code = (
    "import sys, iaat_tf, iaat_tf.main, iaat_tf.config\n"
    "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
  ).stdout
  assert out.split() == ["False", "False"]


def _images(n=10):
  return np.arange(n * 4 * 4, dtype=np.float32).reshape(n, 4, 4, 1) / (n * 16)


def test_ids_are_positions_before_shuffle():
  x, y = _images(), np.arange(10) % 3
  keyed = iaat_tf.with_example_ids(tf.data.Dataset.from_tensor_slices((x, y)))
  assert iaat_tf.num_examples(keyed) == 10
  seen = {}
  for epoch in range(2):
    for features, labels in keyed.shuffle(10, seed=epoch).batch(4):
      for image, index, label in zip(
        features["image"].numpy(), features["index"].numpy(), labels.numpy()
      ):
        np.testing.assert_array_equal(image, x[index])
        assert label == y[index]
        seen.setdefault(epoch, []).append(int(index))
  assert sorted(seen[0]) == sorted(seen[1]) == list(range(10))
  assert seen[0] != seen[1]  # Shuffled differently, same ids.
  assert keyed.element_spec[0]["index"].dtype == tf.int64
  assert keyed.element_spec[1].dtype == tf.int64


def test_uint8_images_dicts_and_tfds_style_elements():
  x8 = np.full([3, 2, 2, 3], 255, np.uint8)
  y = np.array([0, 1, 2], np.int32)
  sources = [
    tf.data.Dataset.from_tensor_slices((x8, y)),
    tf.data.Dataset.from_tensor_slices(({"image": x8, "extra": y}, y)),
    tf.data.Dataset.from_tensor_slices({"image": x8, "label": y}),
  ]
  for source in sources:
    features, labels = next(iter(iaat_tf.with_example_ids(source).batch(3)))
    assert sorted(features) == ["image", "index"]
    np.testing.assert_allclose(features["image"].numpy(), 1.0)
    np.testing.assert_array_equal(features["index"].numpy(), [0, 1, 2])
    np.testing.assert_array_equal(labels.numpy(), y)


@pytest.mark.parametrize(
  "dataset, message",
  [
    (
      lambda: tf.data.Dataset.from_tensor_slices((_images(), np.zeros(10, int))).batch(2),
      "looks batched",
    ),
    (
      lambda: tf.data.Dataset.from_tensor_slices(({"pixels": _images()}, np.zeros(10, int))),
      "no 'image' key",
    ),
    (lambda: tf.data.Dataset.from_tensor_slices({"image": _images()}), "needs 'image' and 'label'"),
    (
      lambda: tf.data.Dataset.from_tensor_slices((_images(), np.zeros(10, np.float32))),
      "integer class ids",
    ),
    (
      lambda: tf.data.Dataset.from_tensor_slices((_images()[..., 0], np.zeros(10, int))),
      "channel axis",
    ),
    (
      lambda: iaat_tf.with_example_ids(
        tf.data.Dataset.from_tensor_slices((_images(), np.zeros(10, int)))
      ),
      "already have an 'index'",
    ),
  ],
)
def test_refuses_datasets_it_cannot_key(dataset, message):
  with pytest.raises(iaat_tf.ExampleIdError, match=message):
    iaat_tf.with_example_ids(dataset())


class _Epochs(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.seen = []

  def on_epoch_begin(self, epoch, logs=None):
    self.seen.append(int(self.model.epoch.numpy()))


def _epoch_trainer(steps_per_epoch=0):
  keras.utils.set_random_seed(0)
  classifier = keras.Sequential(
    [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
  )
  trainer = iaat_tf.AdversarialTrainer(
    classifier,
    8,
    iaat_tf.MethodConfig(method="iaat_cheap", eps=0.1, warmup_epochs=1, gamma=0.05),
    iaat_tf.AttackConfig(steps=1),
    steps_per_epoch=steps_per_epoch,
  )
  trainer.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
  return trainer


@pytest.mark.parametrize("positional", [False, True])
def test_the_epoch_is_derived_from_the_step_count(positional):
  """trainer.epoch = iterations // steps per epoch (here the dataset's
  length) + the offset of fit's initial_epoch: no callback sets it."""
  x, y = _images(8), np.arange(8) % 2
  ds = iaat_tf.with_example_ids(tf.data.Dataset.from_tensor_slices((x, y))).batch(4)
  trainer = _epoch_trainer()
  spy = _Epochs()
  if positional:
    trainer.fit(ds, None, None, 3, 0, [spy])
  else:
    trainer.fit(ds, epochs=3, verbose=0, callbacks=[spy], initial_epoch=1)
  assert spy.seen == ([0, 1, 2] if positional else [1, 2])
  assert int(trainer.epoch.numpy()) == 3  # Epochs run (incl. the offset).
  assert int(trainer.optimizer.iterations.numpy()) == (6 if positional else 4)


def test_the_epoch_needs_steps_per_epoch_when_the_length_is_unknown():
  x, y = _images(8), np.arange(8) % 2
  ds = iaat_tf.with_example_ids(tf.data.Dataset.from_tensor_slices((x, y)))
  ds = ds.filter(lambda inputs, label: True).batch(4)  # Unknown length.
  trainer = _epoch_trainer()
  with pytest.raises(ValueError, match="pass steps_per_epoch="):
    trainer.fit(ds, epochs=2, verbose=0)
  spy = _Epochs()
  trainer.fit(ds.repeat(), epochs=2, verbose=0, callbacks=[spy], steps_per_epoch=2)
  assert spy.seen == [0, 1]
  # Or given to the trainer once.
  trainer = _epoch_trainer(steps_per_epoch=2)
  trainer.fit(ds.repeat(), epochs=2, verbose=0, steps_per_epoch=2)
  assert int(trainer.epoch.numpy()) == 2
