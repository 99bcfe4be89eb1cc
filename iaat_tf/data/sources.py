"""Where examples come from: one small loader per dataset source, in a registry.

A loader turns a `DataConfig` into a `Source`: the train and test splits as
`(raw image, label)` datasets in a fixed order (position = example id), the
number of classes, the image shape the model sees, and the per-example
transforms from a raw image to float32 [0, 1] (`train_transform` also takes
the example's stateless seed for augmentation). `pipeline.py` turns a Source
into keyed, shuffled, batched pipelines; `reports/example_lookup.py` reads single
training examples back from it for pictures.

Sources (`LOADERS`):
* `digits`: scikit-learn's bundled 8x8 digits (offline; fixed 80/20 split).
* `npz`: a user file with `x`, `y` (optional `x_test`, `y_test`, `num_classes`).
* `synthetic`: random images and labels, generated from (seed, split, id)
  at the shape and class count of `--synthetic_like` (or `--synthetic_shape`,
  `--num_classes`); for smoke tests of real models at real shapes.
* `mnist`, `cifar10`, `cifar100`, `imagenet2012`: tensorflow-datasets.

The number of classes comes from the dataset (tfds metadata, the digits,
the synthetic table, `num_classes` in the npz) or `--num_classes`; a label
outside it is a `DataError`.
"""

import dataclasses
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from iaat_tf.data import augment
from iaat_tf.data.arrays import (
  DataError,
  _declared_classes,  # pylint: disable=unused-import
  holdout_split,
  load_digits_arrays,
  load_npz_arrays,
)
from iaat_tf.config import DataConfig
from iaat_tf.options import first_line

TFDS_SPLITS = {  # name -> (train split, test split)
  "mnist": ("train", "test"),
  "cifar10": ("train", "test"),
  "cifar100": ("train", "test"),
  "imagenet2012": ("train", "validation"),
}
# --synthetic_like: (image shape, classes) of the dataset synthetic data stands
# in for; imagenet2012's shape is (--image_size, --image_size, 3).
SYNTHETIC_LIKE = {
  "digits": ((8, 8, 1), 10),
  "mnist": ((28, 28, 1), 10),
  "cifar10": ((32, 32, 3), 10),
  "cifar100": ((32, 32, 3), 100),
  "imagenet2012": (None, 1000),
}
# ImageNet's auto shuffle buffer, in encoded JPEGs (~110 KB each: ~5.5 GB).
IMAGENET_SHUFFLE_BUFFER = 50_000
_SYNTHETIC_SALT = {"train": 0x5E7A, "test": 0x7E57}


Transform = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Source:
  """One dataset's splits before keying, shuffling and batching.

  `train`/`test` yield (raw image, label) in id order. `train_transform(raw,
  seed)` and `eval_transform(raw)` give float32 [0, 1] images of
  `image_shape`. `arrays` holds (x_train, y_train) of in-memory sources (for
  direct lookups). `shuffle_buffer` is the auto (`--shuffle_buffer=0`) size.
  """

  name: str
  train: tf.data.Dataset
  test: tf.data.Dataset
  num_classes: int
  image_shape: Tuple[int, ...]  # (H, W, C)
  num_train: int
  num_test: int
  train_transform: Transform
  eval_transform: Transform
  cache: bool
  shuffle_buffer: int
  arrays: Optional[Tuple[np.ndarray, np.ndarray]] = None


def _transforms(config: DataConfig, decode=lambda im: im):
  """Generic (train, eval) transforms: unit range, optional pad-crop-flip."""

  def eval_transform(raw):
    return augment.to_unit_float(decode(raw))

  def train_transform(raw, seed):
    image = eval_transform(raw)
    return augment.pad_crop_flip(image, seed, mode=config.augment_pad) if config.augment else image

  return train_transform, eval_transform


# -- class counts --------------------------------------------------------------


def _array_source(config: DataConfig, name: str, train, test, num_classes) -> Source:
  (x, y), (xt, yt) = train, test
  if config.max_train_examples:
    x, y = x[: config.max_train_examples], y[: config.max_train_examples]
  if config.max_eval_examples:
    xt, yt = xt[: config.max_eval_examples], yt[: config.max_eval_examples]
  train_transform, eval_transform = _transforms(config)
  return Source(
    name=name,
    train=tf.data.Dataset.from_tensor_slices((x, y)),
    test=tf.data.Dataset.from_tensor_slices((xt, yt)),
    num_classes=int(num_classes),
    image_shape=tuple(int(d) for d in x.shape[1:]),
    num_train=len(x),
    num_test=len(xt),
    train_transform=train_transform,
    eval_transform=eval_transform,
    cache=True,
    shuffle_buffer=max(1, len(x)),
    arrays=(x, y),
  )


def load_digits(config: DataConfig, encoded: bool = False) -> Source:
  del encoded
  train, test, classes = load_digits_arrays(config.holdout_fraction)
  classes = _declared_classes(config, classes, "digits")
  return _array_source(config, "digits", train, test, classes)


def load_npz(config: DataConfig, encoded: bool = False) -> Source:
  del encoded
  if not config.npz_path:
    raise DataError("--dataset=npz needs --npz_path=FILE.npz")
  train, test, classes = load_npz_arrays(config.npz_path, config.holdout_fraction, config)
  return _array_source(config, "npz", train, test, classes)


# -- synthetic -----------------------------------------------------------------


def synthetic_spec(config: DataConfig):
  """(image shape, classes) of `--dataset=synthetic`."""
  if config.synthetic_like not in SYNTHETIC_LIKE:
    raise DataError(
      f"unknown --synthetic_like={config.synthetic_like!r}; choose "
      f"one of {', '.join(SYNTHETIC_LIKE)}"
    )
  like_shape, classes = SYNTHETIC_LIKE[config.synthetic_like]
  shape: tuple[int, ...] = like_shape or (config.image_size, config.image_size, 3)
  if config.synthetic_shape:
    shape = tuple(config.synthetic_shape)
  if len(shape) != 3 or shape[-1] not in (1, 3) or min(shape) < 1:
    raise DataError(f"--synthetic_shape={','.join(map(str, shape))} must be H,W,C with C in (1, 3)")
  classes = config.num_classes or classes
  if classes < 2:
    raise DataError(f"--num_classes={classes}: need at least 2 classes")
  return tuple(int(d) for d in shape), int(classes)


def load_synthetic(config: DataConfig, encoded: bool = False) -> Source:
  """Uniform random images and labels, a pure function of (seed, split, id).

  The raw "image" is the example's stateless seed; the transforms draw the
  pixels from it, so shuffling moves seeds, not images.
  """
  del encoded
  shape, classes = synthetic_spec(config)
  num_train, num_test = config.synthetic_train_examples, config.synthetic_test_examples
  if config.max_train_examples:
    num_train = min(num_train, config.max_train_examples)
  if config.max_eval_examples:
    num_test = min(num_test, config.max_eval_examples)
  if num_train < 1 or num_test < 1:
    raise DataError("--synthetic_train_examples and --synthetic_test_examples must be >= 1")

  def split(name: str, n: int) -> tf.data.Dataset:
    base = tf.constant([int(config.seed), _SYNTHETIC_SALT[name]], tf.int64)

    def example(index):
      seed = tf.random.experimental.stateless_fold_in(base, index)
      label = tf.random.stateless_uniform(
        [], seed=seed[::-1], minval=0, maxval=classes, dtype=tf.int64
      )
      return seed, label

    return tf.data.Dataset.range(n).map(example)

  def eval_transform(seed):
    return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)

  def train_transform(seed, augment_seed):
    image = eval_transform(seed)
    return (
      augment.pad_crop_flip(image, augment_seed, mode=config.augment_pad)
      if config.augment
      else image
    )

  return Source(
    name="synthetic",
    train=split("train", num_train),
    test=split("test", num_test),
    num_classes=classes,
    image_shape=shape,
    num_train=num_train,
    num_test=num_test,
    train_transform=train_transform,
    eval_transform=eval_transform,
    cache=False,
    shuffle_buffer=num_train,
  )


# -- tfds ----------------------------------------------------------------------


def _num_examples(ds: tf.data.Dataset, info, split: str) -> int:
  """The split's size: from the dataset, else tfds metadata, else a count."""
  n = int(ds.cardinality().numpy())
  if n >= 0:
    return n
  try:
    return int(info.splits[split].num_examples)
  except KeyError:
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1).numpy())


def load_tfds(config: DataConfig, encoded: bool = False) -> Source:
  """A tensorflow-datasets source from --data_dir.

  With `encoded` (and always for ImageNet) images stay encoded bytes until
  the transforms decode them: cheap label scans, and ImageNet's shuffle
  buffer holds JPEGs instead of decoded images.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  name = config.dataset
  if config.data_dir and not config.download and not os.path.isdir(config.data_dir):
    raise DataError(
      f"--data_dir={config.data_dir} does not exist (pass the directory holding tfds "
      "data; iaat-train --download fetches it)"
    )
  imagenet = name == "imagenet2012"
  skip_decoding = encoded or imagenet
  train_split, test_split = TFDS_SPLITS[name]
  kwargs = {}
  if skip_decoding:
    kwargs["decoders"] = {"image": tfds.decode.SkipDecoding()}
  if config.manual_dir:
    kwargs["download_and_prepare_kwargs"] = {
      "download_config": tfds.download.DownloadConfig(manual_dir=config.manual_dir)
    }
  try:
    (train, test), info = tfds.load(
      name,
      split=[train_split, test_split],
      data_dir=config.data_dir,
      download=config.download,
      as_supervised=True,
      shuffle_files=False,
      with_info=True,
      **kwargs,
    )
  except Exception as e:  # tfds raises AssertionError/DatasetNotFoundError/...
    first = first_line(e)
    if "could not find data" in first:  # tfds' words name its own download=True.
      raise DataError(
        f"--data_dir={config.data_dir} holds no prepared tfds {name!r} data: prepare it "
        f"with `tfds build {name} --data_dir={config.data_dir}` (iaat-train --download "
        "fetches it)"
      ) from e
    raise DataError(
      f"could not load tfds dataset {name!r} from --data_dir={config.data_dir}: {first}"
    ) from e
  classes = _declared_classes(config, info.features["label"].num_classes, f"tfds {name}")
  shape = tuple(info.features["image"].shape)
  channels = int(shape[-1])
  num_train = _num_examples(train, info, train_split)
  num_test = _num_examples(test, info, test_split)
  if config.max_train_examples:
    train, num_train = (
      train.take(config.max_train_examples),
      min(num_train, config.max_train_examples),
    )
  if config.max_eval_examples:
    test, num_test = test.take(config.max_eval_examples), min(num_test, config.max_eval_examples)

  decode = lambda im: im
  if skip_decoding:
    decode = lambda im: tf.ensure_shape(
      tf.io.decode_image(im, channels=channels, expand_animations=False), [None, None, channels]
    )
  if imagenet:
    size = config.image_size
    shape = (size, size, 3)
    # Decodes only the random crop: the training pipeline's main cost.
    train_transform = lambda raw, seed: augment.imagenet_train_crop_encoded(
      raw, size, seed, channels
    )
    eval_transform = lambda raw: augment.imagenet_eval_crop(decode(raw), size)
  else:
    train_transform, eval_transform = _transforms(config, decode)
  return Source(
    name=name,
    train=train,
    test=test,
    num_classes=classes,
    image_shape=tuple(int(d) for d in shape),
    num_train=num_train,
    num_test=num_test,
    train_transform=train_transform,
    eval_transform=eval_transform,
    cache=not imagenet,
    shuffle_buffer=min(num_train, IMAGENET_SHUFFLE_BUFFER) if imagenet else num_train,
  )


LOADERS = {
  "digits": load_digits,
  "npz": load_npz,
  "synthetic": load_synthetic,
  **{name: load_tfds for name in TFDS_SPLITS},
}


def load_source(config: DataConfig, encoded: bool = False) -> Source:
  """The `Source` named by `config.dataset` (see LOADERS)."""
  loader = LOADERS.get(config.dataset)
  if loader is None:
    raise DataError(f"unknown dataset {config.dataset!r}")
  return loader(config, encoded=encoded)


def split_validation(source: Source, fraction: float) -> Tuple[Source, Optional[tf.data.Dataset]]:
  """Holds `fraction` of the training split out for robust early stopping.

  The held-out ids are fixed by example position (`holdout_split`'s fixed
  permutation), independent of --seed. Returns the source with only the
  kept training examples (in id order, so they are enumerated again
  downstream and training ids stay dense 0..n-1 for the eps table) and the
  held-out (raw image, label) dataset; (source, None) when fraction is 0.
  """
  if not fraction:
    return source, None
  kept, held = holdout_split(source.num_train, fraction)
  is_held = tf.constant(np.isin(np.arange(source.num_train), held))
  keyed = source.train.enumerate()

  def pick(want: bool, count: int) -> tf.data.Dataset:
    chosen = keyed.filter(lambda i, example: tf.equal(is_held[i], want))
    # Known sizes keep Keras' epoch bookkeeping exact.
    return chosen.map(lambda i, example: example).apply(
      tf.data.experimental.assert_cardinality(count)
    )

  arrays = None
  if source.arrays is not None:
    x, y = source.arrays
    arrays = (x[kept], y[kept])
  train = dataclasses.replace(
    source, train=pick(False, len(kept)), num_train=len(kept), arrays=arrays
  )
  return train, pick(True, len(held))
