"""Training examples read back by id, for pictures and per-class summaries.

Only the end-of-run plots need these: the label of every training id, and
the un-augmented images of a few ids (the smallest/largest radii). In-memory
sources index their arrays; tfds sources are read once with images left
encoded and only the requested ones decoded.
"""

import numpy as np
import tensorflow as tf

from iaat_tf.data import sources
from iaat_tf.config import DataConfig
from iaat_tf.data.sources import DataError


def _training_source(config: DataConfig) -> sources.Source:
  """The training split as the run trained on it (validation ids held out)."""
  source = sources.load_source(config, encoded=True)
  return sources.split_validation(source, config.validation_fraction)[0]


def train_examples_by_index(config: DataConfig, indices: np.ndarray):
  """(images [M,H,W,C] in [0,1], labels [M]) of the given training ids.

  Images are the un-augmented originals (ImageNet: the central eval crop).
  """
  indices = np.asarray(indices, np.int64)
  source = _training_source(config)
  if source.arrays is not None:
    x, y = source.arrays
    return x[indices], y[indices]
  wanted: dict[int, list[int]] = {}  # id -> positions in the answer (an id may be asked twice).
  for k, i in enumerate(indices):
    wanted.setdefault(int(i), []).append(k)
  images: list = [None] * len(indices)
  labels = np.zeros([len(indices)], np.int64)
  remaining = len(wanted)
  keyed = source.train.enumerate().filter(lambda i, ex: tf.reduce_any(tf.equal(i, indices)))
  keyed = keyed.map(lambda i, ex: (i, source.eval_transform(ex[0]), ex[1]))
  for index, image, label in keyed.as_numpy_iterator():
    for k in wanted[int(index)]:
      images[k], labels[k] = image, label
    remaining -= 1
    if not remaining:
      break
  if remaining:
    raise DataError(f"{remaining} requested training ids were not found")
  return np.stack(images), labels


def read_train_labels(config: DataConfig) -> np.ndarray:
  """Label of every training example, by index (one pass over the labels)."""
  source = _training_source(config)
  if source.arrays is not None:
    return source.arrays[1]
  labels = source.train.map(lambda raw, label: label)
  return np.fromiter(labels.as_numpy_iterator(), dtype=np.int64)
