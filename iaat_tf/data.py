"""Input pipelines keyed by a stable example index.

Every pipeline yields `({"image": float32 [B, H, W, C] in [0, 1],
"index": int64 [B]}, label int64 [B])`. The index is the example's position
in its split *before* any shuffling, augmentation or batching
(`enumerate()` first), so it can address the per-example eps table and seed
per-example attack noise, whatever the batch order or number of replicas.

Sources:
* `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  offline; a fixed 80/20 split) for the quick start and tests.
* `mnist`, `cifar10`, `cifar100`, `imagenet2012`: tensorflow-datasets from
  `--data_dir` (prepared data; `--download` lets tfds fetch/prepare it;
  ImageNet needs `--manual_dir` with the tar files to prepare).
* `npz`: a user file with `x` [N, H, W(, C)] and `y` [N] (and optionally
  `x_test`, `y_test`; otherwise `holdout_fraction` is held out).
"""

import dataclasses
import functools
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from iaat_tf.config import DataConfig

AUTOTUNE = tf.data.AUTOTUNE
TFDS_DATASETS = {  # name -> (train split, test split)
    "mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "imagenet2012": ("train", "validation"),
}
_SPLIT_SEED = 20191018  # Fixed: the held-out split never depends on --seed.


class DataError(ValueError):
  """A user-facing data problem (missing directory, bad file); one line."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: Tuple[int, int, int]
  num_train: int
  num_test: int
  num_validation: int = 0  # Held out of the training split (early stopping).


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
  train_epochs: Callable[[int, int], tf.data.Dataset]
  validation: Optional[tf.data.Dataset] = None  # With validation_fraction > 0.


# -- array sources -----------------------------------------------------------

def holdout_split(num_examples: int, fraction: float):
  """A fixed (train, test) index split of range(num_examples)."""
  order = np.random.RandomState(_SPLIT_SEED).permutation(num_examples)
  num_test = max(1, int(round(num_examples * fraction)))
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def split_validation(source: tf.data.Dataset, num_train: int, fraction: float):
  """Holds `fraction` of the first `num_train` training examples out.

  The held-out ids are fixed by example position (`holdout_split`'s fixed
  permutation), independent of --seed. Returns (training source, validation
  source, ids of the kept examples in the original split); both sources
  yield (image, label) and are enumerated again downstream, so training ids
  stay dense 0..len(kept)-1 for the eps table.
  """
  kept, held = holdout_split(num_train, fraction)
  is_held = tf.constant(np.isin(np.arange(num_train), held))
  keyed = source.take(num_train).enumerate()

  def pick(want: bool, count: int) -> tf.data.Dataset:
    def selected(i, example):
      del example
      return tf.equal(is_held[i], want)

    def drop_index(i, example):
      del i
      return example

    # Known sizes keep Keras' epoch bookkeeping exact.
    return keyed.filter(selected).map(drop_index).apply(
        tf.data.experimental.assert_cardinality(count))

  return pick(False, len(kept)), pick(True, len(held)), kept


def _kept_train_ids(config: DataConfig, num_train: int) -> np.ndarray:
  """Original ids of the training examples left after the validation split."""
  if not config.validation_fraction:
    return np.arange(num_train)
  return holdout_split(num_train, config.validation_fraction)[0]


def load_digits_arrays(holdout_fraction: float = 0.2):
  """scikit-learn's digits as ([N,8,8,1] float32 in [0,1], int64 labels)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int64)
  train, test = holdout_split(len(y), holdout_fraction)
  return (x[train], y[train]), (x[test], y[test]), 10


def _images_to_unit_range(x: np.ndarray, name: str, path: str) -> np.ndarray:
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise DataError(f"{path}: {name} must have shape [N, H, W] or [N, H, W, C] "
                    f"with C in (1, 3), got {list(x.shape)}")
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  x = x.astype(np.float32)
  if x.size and (np.nanmin(x) < 0.0 or np.nanmax(x) > 1.0 or np.isnan(x).any()):
    raise DataError(f"{path}: {name} must be uint8 (0..255) or float in [0, 1]; "
                    f"got values in [{np.nanmin(x):g}, {np.nanmax(x):g}]")
  return x


def _labels(y: np.ndarray, n: int, name: str, path: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != n:
    raise DataError(f"{path}: {name} must have shape [{n}] (one label per image), "
                    f"got {list(y.shape)}")
  if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
    raise DataError(f"{path}: {name} must hold non-negative integer class ids")
  return y.astype(np.int64)


def load_npz_arrays(path: str, holdout_fraction: float = 0.2):
  """Reads and validates a user `.npz` (x, y[, x_test, y_test])."""
  if not os.path.isfile(path):
    raise DataError(f"--npz_path={path} does not exist")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # zipfile/pickle/format errors: all user input.
    raise DataError(f"--npz_path={path} is not a readable .npz file ({e})") from e
  for key in ("x", "y"):
    if key not in arrays:
      raise DataError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
  x = _images_to_unit_range(arrays["x"], "x", path)
  y = _labels(arrays["y"], len(x), "y", path)
  if ("x_test" in arrays) != ("y_test" in arrays):
    raise DataError(f"{path}: give both x_test and y_test, or neither")
  if "x_test" in arrays:
    x_test = _images_to_unit_range(arrays["x_test"], "x_test", path)
    y_test = _labels(arrays["y_test"], len(x_test), "y_test", path)
    if x_test.shape[1:] != x.shape[1:]:
      raise DataError(f"{path}: x_test images {list(x_test.shape[1:])} differ "
                      f"from x images {list(x.shape[1:])}")
  else:
    if len(x) < 2:
      raise DataError(f"{path}: need at least 2 examples to hold out a test split")
    train, test = holdout_split(len(x), holdout_fraction)
    x, y, x_test, y_test = x[train], y[train], x[test], y[test]
  num_classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
  if num_classes < 2:
    raise DataError(f"{path}: labels name a single class; need at least 2")
  return (x, y), (x_test, y_test), num_classes


# -- tfds sources ------------------------------------------------------------

def _load_tfds(config: DataConfig, skip_decoding: bool = False):
  """(train, test, num_classes, image shape, info) from tfds.

  With `skip_decoding` images stay encoded bytes (cheap label scans; decode
  the few images needed with `tf.io.decode_image`).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name = config.dataset
  if config.data_dir and not config.download and not os.path.isdir(config.data_dir):
    raise DataError(f"--data_dir={config.data_dir} does not exist (pass the "
                    f"directory holding tfds data, or --download)")
  train_split, test_split = TFDS_DATASETS[name]
  kwargs = {}
  if skip_decoding:
    kwargs["decoders"] = {"image": tfds.decode.SkipDecoding()}
  if config.manual_dir:
    kwargs["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=config.manual_dir)}
  try:
    (train, test), info = tfds.load(
        name, split=[train_split, test_split], data_dir=config.data_dir,
        download=config.download, as_supervised=True, shuffle_files=False,
        with_info=True, **kwargs)
  except Exception as e:  # tfds raises AssertionError/DatasetNotFoundError/...
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"could not load tfds dataset {name!r} from --data_dir="
                    f"{config.data_dir}: {first}") from e
  num_classes = info.features["label"].num_classes
  shape = info.features["image"].shape
  return train, test, num_classes, shape, info


def _num_examples(ds: tf.data.Dataset, info, split: str) -> int:
  """The split's size: from the dataset, else tfds metadata, else a count."""
  n = int(ds.cardinality().numpy())
  if n >= 0:
    return n
  try:
    return int(info.splits[split].num_examples)
  except KeyError:
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1).numpy())


# -- per-example transforms --------------------------------------------------

def to_unit_float(image: tf.Tensor) -> tf.Tensor:
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  return tf.cast(image, tf.float32)


def cifar_augment(image: tf.Tensor, pad: int = 4) -> tf.Tensor:
  """Zero-pad by `pad`, random crop back, random horizontal flip."""
  shape = tf.shape(image)
  padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  image = tf.image.random_crop(padded, shape)
  return tf.image.random_flip_left_right(image)


def imagenet_train_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """Inception-style random-resized crop (area 8%-100%) and flip, [0,1] out."""
  bbox = tf.zeros([1, 0, 4], tf.float32)
  begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
      tf.shape(image), bbox, min_object_covered=0.1,
      aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
      max_attempts=10, use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, crop_size)
  image = tf.image.resize(to_unit_float(image), [size, size], antialias=True)
  image = tf.image.random_flip_left_right(image)
  return tf.clip_by_value(image, 0.0, 1.0)


def imagenet_eval_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """Resize the short side to size/0.875, then a central size x size crop."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = (size / 0.875) / tf.reduce_min(shape)
  new = tf.cast(tf.round(shape * scale), tf.int32)
  image = tf.image.resize(to_unit_float(image), new, antialias=True)
  image = tf.image.resize_with_crop_or_pad(image, size, size)
  return tf.clip_by_value(image, 0.0, 1.0)


# -- pipelines ---------------------------------------------------------------

def _keyed(ds: tf.data.Dataset) -> tf.data.Dataset:
  """(image, label) -> (index, image, label): index assigned before shuffling."""
  return ds.enumerate().map(lambda i, ex: (i, ex[0], ex[1]))


def _with_options(ds: tf.data.Dataset) -> tf.data.Dataset:
  options = tf.data.Options()
  # Every worker reads the same enumerated examples, then splits each batch:
  # the index stays the global example id under multi-worker training.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return ds.with_options(options).prefetch(AUTOTUNE)


def epoch_seed(seed: int, epoch: int) -> int:
  """The shuffle seed of one epoch (a pure function of seed and epoch).

  A Python int: tf.data's seed handling cannot take a tensor seed when the
  global seed is 0 (`keras.utils.set_random_seed(0)`).
  """
  return (int(epoch) + 1_000_003 * (int(seed) + 1)) % (2**31 - 1)


def build_pipeline(source: tf.data.Dataset, *, training: bool,
                   config: DataConfig, preprocess, cache: bool,
                   limit: int = 0):
  """source yields (image, label) -> batched ({image, index}, label).

  Returns the test dataset, or for training a function
  (start_epoch, end_epoch) -> the batches of those epochs.
  """
  if limit:
    source = source.take(limit)
  ds = _keyed(source)
  if cache:
    ds = ds.cache()

  def to_example(index, image, label):
    return ({"image": preprocess(image), "index": tf.cast(index, tf.int64)},
            tf.cast(label, tf.int64))

  if not training:
    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE)
    return _with_options(ds.batch(config.eval_batch_size))

  def one_epoch(epoch: int) -> tf.data.Dataset:
    shuffled = ds.shuffle(config.shuffle_buffer, seed=epoch_seed(config.seed, epoch),
                          reshuffle_each_iteration=False)
    shuffled = shuffled.map(to_example, num_parallel_calls=AUTOTUNE)
    # Full batches: static shapes for XLA and equal replica shares.
    return shuffled.batch(config.batch_size, drop_remainder=True)

  def epochs(start: int, end: int) -> tf.data.Dataset:
    if end <= start:
      raise ValueError(f"empty epoch range [{start}, {end})")
    return _with_options(functools.reduce(
        lambda a, b: a.concatenate(b), [one_epoch(e) for e in range(start, end)]))

  return epochs


def load_datasets(config: DataConfig) -> Datasets:
  """Builds the train and test pipelines named by `config.dataset`."""
  name = config.dataset
  if name in ("digits", "npz"):
    if name == "digits":
      (x, y), (xt, yt), num_classes = load_digits_arrays(config.holdout_fraction)
    else:
      (x, y), (xt, yt), num_classes = load_npz_arrays(config.npz_path,
                                                      config.holdout_fraction)
    if config.max_train_examples:
      x, y = x[:config.max_train_examples], y[:config.max_train_examples]
    if config.max_eval_examples:
      xt, yt = xt[:config.max_eval_examples], yt[:config.max_eval_examples]
    if len(x) < config.batch_size:
      raise DataError(f"--batch_size={config.batch_size} is larger than the "
                      f"{len(x)} training examples")
    train_src = tf.data.Dataset.from_tensor_slices((x, y))
    test_src = tf.data.Dataset.from_tensor_slices((xt, yt))
    shape = tuple(int(d) for d in x.shape[1:])
    num_train, num_test = len(x), len(xt)
    cache = True
  elif name in TFDS_DATASETS:
    train_src, test_src, num_classes, shape, tf_info = _load_tfds(config)
    num_train = _num_examples(train_src, tf_info, TFDS_DATASETS[name][0])
    num_test = _num_examples(test_src, tf_info, TFDS_DATASETS[name][1])
    if config.max_train_examples:
      num_train = min(num_train, config.max_train_examples)
    if config.max_eval_examples:
      num_test = min(num_test, config.max_eval_examples)
    cache = name != "imagenet2012"
    if name == "imagenet2012":
      shape = (config.image_size, config.image_size, 3)
  else:
    raise DataError(f"unknown dataset {name!r}")
  validation_src, num_validation = None, 0
  if config.validation_fraction:
    train_src, validation_src, kept = split_validation(
        train_src, num_train, config.validation_fraction)
    num_train, num_validation = len(kept), num_train - len(kept)

  if name == "imagenet2012":
    train_pre = lambda im: imagenet_train_crop(im, config.image_size)
    test_pre = lambda im: imagenet_eval_crop(im, config.image_size)
  else:
    augment = config.augment
    train_pre = (lambda im: cifar_augment(to_unit_float(im))) if augment else to_unit_float
    test_pre = to_unit_float
  train_epochs = build_pipeline(train_src, training=True, config=config,
                                preprocess=train_pre, cache=cache,
                                limit=config.max_train_examples if name in TFDS_DATASETS else 0)
  test = build_pipeline(test_src, training=False, config=config,
                        preprocess=test_pre, cache=cache,
                        limit=config.max_eval_examples if name in TFDS_DATASETS else 0)
  validation = None
  if validation_src is not None:
    validation = build_pipeline(validation_src, training=False, config=config,
                                preprocess=test_pre, cache=cache)
  info = DatasetInfo(name=name, num_classes=int(num_classes),
                     image_shape=tuple(int(d) for d in shape),
                     num_train=int(num_train), num_test=int(num_test),
                     num_validation=int(num_validation))
  return Datasets(train=train_epochs(0, 1), test=test, info=info,
                  train_epochs=train_epochs, validation=validation)


def _train_arrays(config: DataConfig):
  if config.dataset == "digits":
    (x, y), _, _ = load_digits_arrays(config.holdout_fraction)
  else:
    (x, y), _, _ = load_npz_arrays(config.npz_path, config.holdout_fraction)
  if config.max_train_examples:
    x, y = x[:config.max_train_examples], y[:config.max_train_examples]
  return x, y


def train_examples_by_index(config: DataConfig, indices: np.ndarray):
  """(images [M,H,W,C] in [0,1], labels [M]) of the given training ids.

  Used for pictures of the smallest/largest-eps examples; images are the
  un-augmented originals (ImageNet: the central eval crop).
  """
  indices = np.asarray(indices, np.int64)
  if config.dataset in ("digits", "npz"):
    x, y = _train_arrays(config)
    indices = _kept_train_ids(config, len(y))[indices]
    return x[indices], y[indices]
  if config.validation_fraction:  # Training ids -> ids in the tfds split.
    num_train = len(read_train_labels(dataclasses.replace(config, validation_fraction=0.0)))
    indices = _kept_train_ids(config, num_train)[indices]
  pre = ((lambda im: imagenet_eval_crop(im, config.image_size))
         if config.dataset == "imagenet2012" else to_unit_float)
  wanted = {int(i): k for k, i in enumerate(indices)}
  images = [None] * len(indices)
  labels = np.zeros([len(indices)], np.int64)
  remaining = len(wanted)
  source, channels = _encoded_train_source(config)
  keyed = _keyed(source)
  keyed = keyed.filter(lambda i, im, y: tf.reduce_any(tf.equal(i, indices)))
  decode = lambda im: tf.ensure_shape(
      tf.io.decode_image(im, channels=channels, expand_animations=False),
      [None, None, channels])
  for index, image, label in keyed.map(
      lambda i, im, y: (i, pre(decode(im)), y)).as_numpy_iterator():
    k = wanted[int(index)]
    images[k], labels[k] = image, label
    remaining -= 1
    if not remaining:
      break
  if remaining:
    raise DataError(f"{remaining} requested training ids were not found")
  return np.stack(images), labels


def _encoded_train_source(config: DataConfig):
  """(tfds training split with images left encoded, image channels)."""
  train, _, _, shape, _ = _load_tfds(config, skip_decoding=True)
  if config.max_train_examples:
    train = train.take(config.max_train_examples)
  return train, int(shape[-1])


def read_train_labels(config: DataConfig) -> np.ndarray:
  """Label of every training example, by index (one pass over the labels)."""
  if config.dataset in ("digits", "npz"):
    labels = _train_arrays(config)[1]
  else:
    ds = _encoded_train_source(config)[0].map(lambda im, label: label)
    labels = np.fromiter(ds.as_numpy_iterator(), dtype=np.int64)
  return labels[_kept_train_ids(config, len(labels))]
