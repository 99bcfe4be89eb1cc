"""The training and evaluation pipelines, keyed by a stable example index.

Every pipeline yields `({"image": float32 [B, H, W, C] in [0, 1],
"index": int64 [B]}, label int64 [B])`. The index is the example's position
in its split *before* any shuffling, augmentation or batching
(`enumerate()` first), so it can address the per-example eps table and seed
per-example attack noise, whatever the batch order or number of replicas.

Epoch e's order is a function of (seed, e) only, and its augmentation a
function of (seed, example id, e) (stateless ops, `augment.py`): a resumed
run sees the same augmented batches as an uninterrupted one.

Under several workers, `train_epochs(..., shard=WorkerShard(...))` gives one
worker its replicas' slices of every global batch, taken *before* the images
are decoded and augmented: each worker decodes only its own examples, and
every replica still gets exactly the examples (ids, crops, flips) it would
get from the one global pipeline.
"""

import dataclasses
import functools
from typing import Callable, Optional, Tuple

import tensorflow as tf

from iaat_tf.data import augment, sources
from iaat_tf.config import DataConfig
from iaat_tf.data.arrays import DataError

AUTOTUNE = tf.data.AUTOTUNE
TFDS_DATASETS = sources.TFDS_SPLITS


@dataclasses.dataclass(frozen=True)
class WorkerShard:
  """One worker's part of every global batch: the contiguous slice
  [worker_index, worker_index + 1) * batch / num_workers, yielded as
  per-replica batches of `replica_batch` (its local replicas in order), as
  `tf.distribute`'s `distribute_datasets_from_function` expects."""

  num_workers: int
  worker_index: int
  replica_batch: int


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: Tuple[int, ...]  # (H, W, C)
  num_train: int
  num_test: int
  num_validation: int = 0  # Held out of the training split (early stopping).

  def describe(self) -> str:
    """One line for the run log, e.g. 'cifar10: 10 classes, 32x32x3, ...'."""
    shape = "x".join(str(d) for d in self.image_shape)
    held = f" / {self.num_validation} validation (held out of train)" if self.num_validation else ""
    return (
      f"{self.name}: {self.num_classes} classes, {shape} images, "
      f"{self.num_train} train / {self.num_test} test{held}"
    )


@dataclasses.dataclass
class Datasets:
  """Batched pipelines plus what the model and eps table need to know.

  `train` is epoch 0's batches; `train_epochs(start, end)` yields the batches
  of epochs start..end-1 back to back. Epoch e's order depends only on
  (seed, e): a resumed run, another strategy or another worker count sees
  the same batches as an uninterrupted single-device run.
  """

  train: tf.data.Dataset
  test: tf.data.Dataset
  info: DatasetInfo
  train_epochs: Callable[..., tf.data.Dataset]  # (start, end, shard=None)
  validation: Optional[tf.data.Dataset] = None  # With validation_fraction > 0.


def _keyed(ds: tf.data.Dataset) -> tf.data.Dataset:
  """(image, label) -> (index, image, label): index assigned before shuffling."""
  return ds.enumerate().map(lambda i, ex: (i, ex[0], ex[1]))


def _with_options(ds: tf.data.Dataset, sharded: bool = False) -> tf.data.Dataset:
  options = tf.data.Options()
  # Unsharded: every worker reads the same enumerated examples, then splits
  # each batch, so the index stays the global example id. Sharded
  # (WorkerShard) pipelines already hold only this worker's examples.
  options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.OFF
    if sharded
    else tf.data.experimental.AutoShardPolicy.DATA
  )
  return ds.with_options(options).prefetch(AUTOTUNE)


def epoch_seed(seed: int, epoch: int) -> int:
  """The shuffle seed of one epoch (a pure function of seed and epoch).

  A Python int: tf.data's seed handling cannot take a tensor seed when the
  global seed is 0 (`keras.utils.set_random_seed(0)`).
  """
  return (int(epoch) + 1_000_003 * (int(seed) + 1)) % (2**31 - 1)


def shuffle_buffer_size(config: DataConfig, source: sources.Source) -> int:
  """--shuffle_buffer, or with 0 (auto) the source's choice (see docs/data.md)."""
  return config.shuffle_buffer or source.shuffle_buffer


def _example(index, image, label):
  return ({"image": image, "index": tf.cast(index, tf.int64)}, tf.cast(label, tf.int64))


def eval_pipeline(
  raw: tf.data.Dataset, source: sources.Source, config: DataConfig
) -> tf.data.Dataset:
  """Batched, un-augmented ({image, index}, label) batches of (raw, label) pairs."""
  keyed = _keyed(raw)
  if source.cache:
    keyed = keyed.cache()
  keyed = keyed.map(
    lambda i, image, y: _example(i, source.eval_transform(image), y), num_parallel_calls=AUTOTUNE
  )
  return _with_options(keyed.batch(config.eval_batch_size))


def build_pipelines(source: sources.Source, config: DataConfig):
  """(test dataset, train_epochs(start, end)) from a Source."""
  keyed_train = _keyed(source.train)
  if source.cache:
    keyed_train = keyed_train.cache()
  test = eval_pipeline(source.test, source, config)
  buffer = shuffle_buffer_size(config, source)

  def one_epoch(epoch: int, shard: Optional[WorkerShard]) -> tf.data.Dataset:
    def transform(index, raw, label):
      seed = augment.example_seed(config.seed, index, epoch)
      return _example(index, source.train_transform(raw, seed), label)

    shuffled = keyed_train.shuffle(
      buffer, seed=epoch_seed(config.seed, epoch), reshuffle_each_iteration=False
    )
    batch = config.batch_size
    if shard is not None:  # This worker's slice of each global batch, raw.
      part = batch // shard.num_workers
      lo = shard.worker_index * part
      shuffled = (
        shuffled.batch(batch, drop_remainder=True)
        .map(lambda i, raw, y: (i[lo : lo + part], raw[lo : lo + part], y[lo : lo + part]))
        .unbatch()
      )
      batch = shard.replica_batch
    shuffled = shuffled.map(transform, num_parallel_calls=AUTOTUNE)
    # Full batches: static shapes for XLA and equal replica shares.
    return shuffled.batch(batch, drop_remainder=True)

  def epochs(start: int, end: int, shard: Optional[WorkerShard] = None) -> tf.data.Dataset:
    if end <= start:
      raise ValueError(f"empty epoch range [{start}, {end})")
    if shard is not None and (
      config.batch_size % shard.num_workers
      or (config.batch_size // shard.num_workers) % shard.replica_batch
    ):
      raise DataError(
        f"--batch_size={config.batch_size} does not split into "
        f"{shard.num_workers} worker(s) of {shard.replica_batch}"
        f"-example replica batches"
      )
    return _with_options(
      functools.reduce(
        lambda a, b: a.concatenate(b), [one_epoch(e, shard) for e in range(start, end)]
      ),
      sharded=shard is not None,
    )

  return test, epochs


def load_datasets(config: DataConfig) -> Datasets:
  """Builds the train and test pipelines named by `config.dataset`."""
  source = sources.load_source(config)
  source, held_out = sources.split_validation(source, config.validation_fraction)
  if source.num_train < config.batch_size:
    raise DataError(
      f"--batch_size={config.batch_size} is larger than the {source.num_train} training examples"
    )
  test, train_epochs = build_pipelines(source, config)
  validation = None
  if held_out is not None:
    validation = eval_pipeline(held_out, source, config)
  info = DatasetInfo(
    name=source.name,
    num_classes=int(source.num_classes),
    image_shape=tuple(int(d) for d in source.image_shape),
    num_train=int(source.num_train),
    num_test=int(source.num_test),
    num_validation=(0 if held_out is None else int(held_out.cardinality())),
  )
  return Datasets(
    train=train_epochs(0, 1), test=test, info=info, train_epochs=train_epochs, validation=validation
  )
