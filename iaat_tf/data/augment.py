"""Per-example image transforms; the random ones are stateless and keyed.

Every random draw comes from `tf.random.stateless_*` / `tf.image.stateless_*`
ops seeded by `example_seed(seed, index, epoch)`: the crop and flip of one
example in one epoch are a pure function of (run seed, example id, epoch).
A resumed run, another replica count or another batch order therefore sees
exactly the same augmented images as an uninterrupted run.

* `to_unit_float`: uint8 0..255 or float -> float32 in [0, 1].
* `pad_crop_flip`: CIFAR-style pad by 4 (zeros, or reflection as in the
  authors' code), random crop back, random flip.
* `imagenet_train_crop` / `imagenet_eval_crop`: Inception-style
  random-resized crop + flip, and the resize + central crop for evaluation;
  `imagenet_train_crop_encoded` takes the encoded bytes and decodes only the
  crop (`decode_and_crop_jpeg`).
"""

import tensorflow as tf

_AUGMENT_SALT = 0x1AA7  # Separates augmentation seeds from attack noise seeds.


def example_seed(seed: int, index: tf.Tensor, epoch: int) -> tf.Tensor:
  """The stateless seed ([2] int64) of one example in one epoch."""
  base = tf.constant([int(seed), _AUGMENT_SALT], tf.int64)
  keyed = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))
  return tf.random.experimental.stateless_fold_in(keyed, tf.cast(epoch, tf.int64))


def to_unit_float(image: tf.Tensor) -> tf.Tensor:
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  return tf.cast(image, tf.float32)


PAD_MODES = {"zeros": "CONSTANT", "reflect": "REFLECT"}


def pad_crop_flip(
  image: tf.Tensor, seed: tf.Tensor, pad: int = 4, mode: str = "zeros"
) -> tf.Tensor:
  """Pad by `pad`, crop back to the original size, maybe flip (keyed).

  `mode` "reflect" mirrors without repeating the edge, like torchvision's
  `T.Pad(4, padding_mode="reflect")`; "zeros" pads with 0.
  """
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  shape = tf.shape(image)
  padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode=PAD_MODES[mode])
  image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
  return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _random_box(shape: tf.Tensor, seed: tf.Tensor):
  """Inception's random box (area 8%-100%, aspect 3/4-4/3) for an image of
  `shape` [H, W, C]: (begin [3], size [3]), a pure function of (shape, seed)."""
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
    shape,
    tf.zeros([1, 0, 4], tf.float32),
    seed=seed,
    min_object_covered=0.1,
    aspect_ratio_range=(3 / 4, 4 / 3),
    area_range=(0.08, 1.0),
    max_attempts=10,
    use_image_if_no_bounding_boxes=True,
  )
  return begin, size


def _resize_and_flip(crop: tf.Tensor, size: int, flip_seed: tf.Tensor) -> tf.Tensor:
  image = tf.image.resize(to_unit_float(crop), [size, size], antialias=True)
  image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
  return tf.clip_by_value(image, 0.0, 1.0)


def imagenet_train_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """Random-resized crop (area 8%-100%, aspect 3/4-4/3) and flip, [0,1] out."""
  box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  begin, crop_size = _random_box(tf.shape(image), box_seed)
  return _resize_and_flip(tf.slice(image, begin, crop_size), size, flip_seed)


def imagenet_train_crop_encoded(
  encoded: tf.Tensor, size: int, seed: tf.Tensor, channels: int = 3
) -> tf.Tensor:
  """`imagenet_train_crop` of encoded image bytes, decoding only the crop.

  JPEGs (all of tfds' imagenet2012) are decoded with `decode_and_crop_jpeg`
  over the same box (the box depends only on the image's shape, read from
  the header, and the seed); other formats are decoded whole, then cropped.
  The decoded crop equals the crop of the whole decode except, at times, in
  its first or last pixel column (libjpeg upsamples chroma at the window's
  edge; tests/data/imagenet_pipeline_test.py), as in every pipeline that uses
  `decode_and_crop_jpeg`.
  """
  box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))

  def jpeg():
    begin, crop_size = _random_box(tf.io.extract_jpeg_shape(encoded), box_seed)
    window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
    return tf.image.decode_and_crop_jpeg(encoded, window, channels=channels)

  def other():
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    begin, crop_size = _random_box(tf.shape(image), box_seed)
    return tf.slice(image, begin, crop_size)

  crop = tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), [None, None, channels])
  return _resize_and_flip(crop, size, flip_seed)


def imagenet_eval_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """Resize the short side to size/0.875, then a central size x size crop."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = (size / 0.875) / tf.reduce_min(shape)
  new = tf.cast(tf.round(shape * scale), tf.int32)
  image = tf.image.resize(to_unit_float(image), new, antialias=True)
  image = tf.image.resize_with_crop_or_pad(image, size, size)
  return tf.clip_by_value(image, 0.0, 1.0)
