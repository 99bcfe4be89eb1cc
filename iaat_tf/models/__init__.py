"""Classifiers: images in [0, 1] (NHWC) -> logits.

Every model starts with a fixed per-channel standardisation layer, so attacks
and radii live in [0, 1] pixel space while the network sees normalised input.

* `small_cnn`: a few conv layers, no BatchNorm (fast; tests, quick start).
* `wide_resnet`: the standard pre-activation WideResNet (Zagoruyko &
  Komodakis); depth 6n+4 (28, 34) or Madry's 6n+2 naming (32-10 is the n=5
  network). Not the IAAT authors' network.
* `authors_wrn`: the IAAT authors' modified WRN (`authors_wrn.py`): 160-wide
  stem, parameter-free BatchNorm, avg-pool/zero-channel shortcuts, 1x1-conv
  head; standardises with their own constants, not `CHANNEL_STATS`.
* `resnet50`: ResNet-50 v1.5 (torchvision's layout), random init, logits
  head; like `wide_resnet` it honours `sync_batchnorm` and `dropout` (before
  the logits), which `keras.applications.ResNet50` cannot.
"""

from typing import Sequence

import keras
from keras import layers

from iaat_tf.models import authors_wrn as authors_wrn_lib
from iaat_tf.config import ModelConfig

# Per-channel statistics of [0, 1] images, by dataset (others: 0.5 / 0.25).
CHANNEL_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "mnist": ((0.1307,), (0.3081,)),
    "digits": ((0.305,), (0.378,)),
}


def channel_stats(dataset: str, channels: int):
  mean, std = CHANNEL_STATS.get(dataset, ((0.5,), (0.25,)))
  if len(mean) != channels:
    mean, std = (mean[0],) * channels, (std[0],) * channels
  return mean, std


def _standardize(x, mean: Sequence[float], std: Sequence[float]):
  return layers.Normalization(mean=list(mean), variance=[s * s for s in std],
                              axis=-1, name="standardize")(x)


def small_cnn(input_shape, num_classes: int, mean, std,
              name: str = "small_cnn") -> keras.Model:
  inputs = keras.Input(shape=input_shape, name="image")
  x = _standardize(inputs, mean, std)
  x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
  x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
  x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
  x = layers.GlobalAveragePooling2D()(x) if input_shape[0] > 16 else layers.Flatten()(x)
  x = layers.Dense(128, activation="relu")(x)
  outputs = layers.Dense(num_classes, name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name=name)


def _bn(sync: bool, name: str):
  return layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                   synchronized=sync, name=name)


def _wrn_block(x, filters: int, stride: int, sync: bool, dropout: float, name: str):
  preact = layers.ReLU(name=f"{name}_relu1")(_bn(sync, f"{name}_bn1")(x))
  if stride != 1 or x.shape[-1] != filters:
    shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                             name=f"{name}_shortcut")(preact)
  else:
    shortcut = x
  y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                    name=f"{name}_conv1")(preact)
  y = layers.ReLU(name=f"{name}_relu2")(_bn(sync, f"{name}_bn2")(y))
  if dropout:
    y = layers.Dropout(dropout)(y)
  y = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                    name=f"{name}_conv2")(y)
  return layers.Add(name=f"{name}_add")([shortcut, y])


def wrn_blocks_per_stage(depth: int) -> int:
  if (depth - 4) % 6 == 0:
    return (depth - 4) // 6
  if (depth - 2) % 6 == 0:  # Madry's WRN-32-10 naming.
    return (depth - 2) // 6
  raise ValueError(f"WideResNet depth must be 6n+4 or 6n+2, got {depth}")


def wide_resnet(input_shape, num_classes: int, mean, std, depth: int = 28,
                width: int = 10, sync_batchnorm: bool = False,
                dropout: float = 0.0) -> keras.Model:
  n = wrn_blocks_per_stage(depth)
  inputs = keras.Input(shape=input_shape, name="image")
  x = _standardize(inputs, mean, std)
  x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv0")(x)
  for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
    for block in range(n):
      stride = 2 if (stage > 0 and block == 0) else 1
      x = _wrn_block(x, filters, stride, sync_batchnorm, dropout,
                     name=f"s{stage}b{block}")
  x = layers.ReLU()(_bn(sync_batchnorm, "final_bn")(x))
  x = layers.GlobalAveragePooling2D()(x)
  outputs = layers.Dense(num_classes, name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name=f"wrn_{depth}_{width}")


_CONV_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(x, filters: int, kernel: int, stride: int, name: str):
  """Bias-free conv with PyTorch's symmetric padding (kernel // 2 each side)."""
  if kernel > 1 and stride > 1:
    x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"
  return layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                       use_bias=False, kernel_initializer=_CONV_INIT,
                       name=name)(x)


def _bottleneck(x, filters: int, stride: int, sync: bool, name: str):
  """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""
  shortcut = x
  if stride != 1 or x.shape[-1] != 4 * filters:
    shortcut = _bn(sync, f"{name}_short_bn")(
        _conv(x, 4 * filters, 1, stride, f"{name}_short_conv"))
  y = layers.ReLU(name=f"{name}_relu1")(
      _bn(sync, f"{name}_bn1")(_conv(x, filters, 1, 1, f"{name}_conv1")))
  y = layers.ReLU(name=f"{name}_relu2")(
      _bn(sync, f"{name}_bn2")(_conv(y, filters, 3, stride, f"{name}_conv2")))
  y = _bn(sync, f"{name}_bn3")(_conv(y, 4 * filters, 1, 1, f"{name}_conv3"))
  return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet50(input_shape, num_classes: int, mean, std,
             sync_batchnorm: bool = False, dropout: float = 0.0) -> keras.Model:
  """ResNet-50 v1.5 as torchvision builds it (25.6M parameters, 1000 classes).

  `sync_batchnorm` makes every BatchNorm use cross-replica statistics;
  `dropout` > 0 adds dropout before the logits.
  """
  inputs = keras.Input(shape=input_shape, name="image")
  x = _standardize(inputs, mean, std)
  x = _conv(x, 64, 7, 2, "stem_conv")
  x = layers.ReLU(name="stem_relu")(_bn(sync_batchnorm, "stem_bn")(x))
  x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
  x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
  for stage, (filters, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
    for block in range(blocks):
      stride = 2 if (stage > 0 and block == 0) else 1
      x = _bottleneck(x, filters, stride, sync_batchnorm, name=f"s{stage}b{block}")
  x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
  if dropout:
    x = layers.Dropout(dropout, name="dropout")(x)
  outputs = layers.Dense(num_classes, name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name="resnet50")


def build_classifier(config: ModelConfig, input_shape, num_classes: int,
                     dataset: str) -> keras.Model:
  """Builds the classifier named by `config.name` (images [0,1] -> logits)."""
  mean, std = channel_stats(dataset, input_shape[-1])
  if config.name == "small_cnn":
    return small_cnn(input_shape, num_classes, mean, std)
  if config.name == "wide_resnet":
    return wide_resnet(input_shape, num_classes, mean, std, config.depth,
                       config.width, config.sync_batchnorm, config.dropout)
  if config.name == "authors_wrn":
    if input_shape[-1] == 3:  # Their constants; other inputs: the dataset's.
      mean, std = authors_wrn_lib.AUTHORS_MEAN, authors_wrn_lib.AUTHORS_STD
    return authors_wrn_lib.authors_wrn(
        input_shape, num_classes, config.depth, config.width, mean, std,
        config.sync_batchnorm)
  if config.name == "resnet50":
    return resnet50(input_shape, num_classes, mean, std, config.sync_batchnorm,
                    config.dropout)
  raise ValueError(f"unknown model {config.name!r}")
