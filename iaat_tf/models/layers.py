"""What every classifier shares: the input standardisation and BatchNorm.

Every model starts with a fixed per-channel standardisation layer, so attacks
and radii live in [0, 1] pixel space while the network sees normalised input.
"""

from typing import Sequence

from keras import layers

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


def batch_norm(sync: bool, name: str):
  """BatchNorm with PyTorch's momentum/epsilon; `sync`: cross-replica statistics."""
  return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync, name=name)
