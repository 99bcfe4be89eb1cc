"""SavedModel export of the classifier alone (no eps table, no optimizer).

The SavedModel has one endpoint, `serve` (also the `serving_default`
signature): float32 images [None, H, W, C] in [0, 1] -> float32 logits. Load
it with `tf.saved_model.load(path).serve(images)`. It is written to a
temporary directory and renamed into place, so a crash never leaves a
half-written model at `path`.
"""

import os
import shutil

import keras
import tensorflow as tf


def export_classifier(classifier: keras.Model, path: str, image_shape) -> str:
  """Writes `classifier` as a SavedModel at `path` (replaced); returns `path`.

  `image_shape` is (H, W, C) of one image; the endpoint `serve` takes float32
  [N, H, W, C] images in [0, 1] and returns float32 logits (inference mode).
  """
  archive = keras.export.ExportArchive()
  archive.track(classifier)
  spec = tf.TensorSpec([None, *image_shape], tf.float32, name="images")

  def serve(images):
    return tf.cast(classifier(images, training=False), tf.float32)

  archive.add_endpoint(name="serve", fn=serve, input_signature=[spec])
  tmp = path.rstrip("/") + ".tmp"
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  archive.write_out(tmp, verbose=False)
  if os.path.exists(path):
    shutil.rmtree(path)
  os.replace(tmp, path)
  return path


def load_classifier(path: str):
  """Loads an exported SavedModel; returns images -> logits."""
  loaded = tf.saved_model.load(path)

  def logits_fn(images):
    # The closure keeps `loaded` (and so its variables) alive.
    return loaded.serve(tf.cast(images, tf.float32))

  # The exported classifier runs in inference mode: examples are independent.
  setattr(logits_fn, "independent_examples", True)  # gradients.mark_independent.
  return logits_fn
