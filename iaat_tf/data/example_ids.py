"""Stable example ids for any `tf.data.Dataset`, the key of IAAT's eps table.

IAAT stores one radius per training example, addressed by an id that must
not change from epoch to epoch, whatever the shuffle order, batch size or
number of replicas. `with_example_ids` gives every example its position in
the dataset as that id, *before* any shuffling or batching:

    train = iaat_tf.with_example_ids(
        tf.data.Dataset.from_tensor_slices((x_train, y_train)))
    train = train.shuffle(10_000).batch(128, drop_remainder=True)
    trainer.fit(train, epochs=...)

The dataset given must be unbatched and yield `(image, label)`, `({"image":
..., ...}, label)` or a tfds-style `{"image": ..., "label": ...}`; it must
yield the same examples in the same order every time it is iterated (no
shuffle before this call, no random `take`). Augment *after* this call.
"""

import tensorflow as tf

from iaat_tf.data.augment import to_unit_float

IMAGE, INDEX, LABEL = "image", "index", "label"


class ExampleIdError(ValueError):
  """The dataset cannot be keyed as given; the message says what to change."""


def _split(spec):
  """(image spec, label spec, image key or None) of one unbatched element."""
  if isinstance(spec, dict):
    if IMAGE not in spec or LABEL not in spec:
      raise ExampleIdError(
        f"with_example_ids: a dataset of dicts needs 'image' and 'label' keys "
        f"(found {sorted(spec)}); or yield (image, label) pairs"
      )
    return spec[IMAGE], spec[LABEL], "dict"
  if not isinstance(spec, tuple) or len(spec) != 2:
    raise ExampleIdError(
      f"with_example_ids: the dataset must yield (image, label) pairs, got elements of {spec}"
    )
  features, label = spec
  if isinstance(features, dict):
    if IMAGE not in features:
      raise ExampleIdError(
        f"with_example_ids: the features dict has no 'image' key (found "
        f"{sorted(features)}); name the image 'image'"
      )
    if INDEX in features:
      raise ExampleIdError(
        "with_example_ids: the features already have an 'index'; call "
        "with_example_ids once, on the raw dataset"
      )
    return features[IMAGE], label, "features"
  return features, label, "tuple"


def _check_unbatched(image_spec, label_spec) -> None:
  if not isinstance(image_spec, tf.TensorSpec):
    raise ExampleIdError(f"with_example_ids: the image must be a dense tensor, got {image_spec}")
  rank = image_spec.shape.rank
  label_rank = getattr(label_spec, "shape", tf.TensorShape(None)).rank
  if rank == 4 or label_rank == 1:
    raise ExampleIdError(
      f"with_example_ids: the dataset looks batched (image shape "
      f"{image_spec.shape}, label shape {label_spec.shape}); call it on the "
      "unbatched dataset, before shuffle() and batch()"
    )
  if rank not in (3, None):
    raise ExampleIdError(
      f"with_example_ids: images must be [height, width, channels], got "
      f"shape {image_spec.shape} (add a channel axis with image[..., None])"
    )
  if label_rank not in (0, None):
    raise ExampleIdError(
      f"with_example_ids: labels must be integer class ids (scalars), got shape {label_spec.shape}"
    )
  if not label_spec.dtype.is_integer:
    raise ExampleIdError(
      f"with_example_ids: labels must be integer class ids, got {label_spec.dtype.name}"
    )


def with_example_ids(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Keys an unbatched dataset by example position: ({"image", "index"}, label).

  Args:
    dataset: unbatched, in a fixed order, yielding `(image, label)`,
      `({"image": image, ...}, label)` or `{"image": image, "label": label}`;
      images [H, W, C] (uint8 0..255 or float in [0, 1]), integer labels.

  Returns:
    A dataset of `({"image": float32 [H, W, C], "index": int64}, int64 label)`,
    the index being the example's position in `dataset` (0 .. N-1, the eps
    table's size N). uint8 images are scaled to [0, 1]; float images are
    passed on as they are. Other feature keys are dropped. Shuffle, augment
    and batch the result.

  Raises:
    ExampleIdError: the dataset is batched, its elements have no image, or
      the labels are not integer class ids.
  """
  image_spec, label_spec, kind = _split(dataset.element_spec)
  _check_unbatched(image_spec, label_spec)

  def key(index, element):
    if kind == "dict":
      image, label = element[IMAGE], element[LABEL]
    elif kind == "features":
      image, label = element[0][IMAGE], element[1]
    else:
      image, label = element
    return (
      {IMAGE: to_unit_float(image), INDEX: tf.cast(index, tf.int64)},
      tf.cast(label, tf.int64),
    )

  return dataset.enumerate().map(key, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def num_examples(dataset: tf.data.Dataset) -> int:
  """The number of examples (the eps table's size): cardinality, else a count."""
  n = int(dataset.cardinality())
  if n == int(tf.data.INFINITE_CARDINALITY):
    raise ExampleIdError(
      "num_examples: the dataset is infinite (repeat()?); count the examples before repeating"
    )
  if n >= 0:
    return n
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda c, _: c + 1))
