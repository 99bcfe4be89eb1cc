"""What every classifier shares: the input standardisation, BatchNorm, PyTorch's conv.

Every model starts with a fixed per-channel standardisation layer, so attacks
and radii live in [0, 1] pixel space while the network sees normalised input.
The models ported from PyTorch (the authors' WRN, ResNet-50) build their
convs with `torch_conv`: PyTorch's padding and initialisation.
"""

from typing import Sequence

import keras
from keras import layers


def kaiming_fan_out() -> keras.initializers.Initializer:
  """nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0,
  2/fan_out), fan_out = out_channels * kernel_h * kernel_w (Keras computes the
  same). A new one per conv: a Keras initializer draws its seed once, when it
  is made, so one shared instance gives every conv of a shape the same
  weights, seeded at import rather than by `keras.utils.set_random_seed`."""
  return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


# Per-channel statistics of [0, 1] images, by dataset (others: 0.5 / 0.25).
CHANNEL_STATS = {
  "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
  "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
  "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
  "mnist": ((0.1307,), (0.3081,)),
  "digits": ((0.305,), (0.378,)),
}


def channel_stats(dataset: str, channels: int):
  """(mean, std) per channel for `dataset` (one value repeated if channels differ)."""
  mean, std = CHANNEL_STATS.get(dataset, ((0.5,), (0.25,)))
  if len(mean) != channels:
    mean, std = (mean[0],) * channels, (std[0],) * channels
  return mean, std


def standardize(x, mean: Sequence[float], std: Sequence[float]):
  return layers.Normalization(
    mean=list(mean), variance=[s * s for s in std], axis=-1, name="standardize"
  )(x)


def batch_norm(sync: bool, name: str, affine: bool = True):
  """BatchNorm with PyTorch's momentum/epsilon; `sync`: cross-replica
  statistics; `affine=False`: no scale or offset (PyTorch's affine=False)."""
  return layers.BatchNormalization(
    momentum=0.9, epsilon=1e-5, center=affine, scale=affine, synchronized=sync, name=name
  )


def torch_conv(x, filters: int, kernel: int, stride: int, name: str):
  """Bias-free conv as PyTorch pads it (kernel // 2 on every side), Kaiming
  fan-out init. A strided conv pads explicitly: TensorFlow's "same" would pad
  only bottom/right."""
  if kernel > 1 and stride > 1:
    x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"  # Symmetric for odd kernels at stride 1.
  return layers.Conv2D(
    filters,
    kernel,
    strides=stride,
    padding=padding,
    use_bias=False,
    kernel_initializer=kaiming_fan_out(),
    name=name,
  )(x)
