"""One registry of classifiers: `build_classifier(ModelConfig, ...)` by name."""

import keras

from iaat_tf.config import ModelConfig
from iaat_tf.models import authors_wrn as authors_wrn_lib
from iaat_tf.models.layers import channel_stats
from iaat_tf.models.resnet import resnet50
from iaat_tf.models.small_cnn import small_cnn
from iaat_tf.models.wide_resnet import wide_resnet


def build_classifier(
  config: ModelConfig, input_shape, num_classes: int, dataset: str
) -> keras.Model:
  """Builds the classifier named by `config.name` (images [0,1] -> logits)."""
  mean, std = channel_stats(dataset, input_shape[-1])
  if config.name == "small_cnn":
    return small_cnn(input_shape, num_classes, mean, std)
  if config.name == "wide_resnet":
    return wide_resnet(
      input_shape,
      num_classes,
      mean,
      std,
      config.depth,
      config.width,
      config.sync_batchnorm,
      config.dropout,
    )
  if config.name == "authors_wrn":
    if input_shape[-1] == 3:  # Their constants; other inputs: the dataset's.
      mean, std = authors_wrn_lib.AUTHORS_MEAN, authors_wrn_lib.AUTHORS_STD
    return authors_wrn_lib.authors_wrn(
      input_shape, num_classes, config.depth, config.width, mean, std, config.sync_batchnorm
    )
  if config.name == "resnet50":
    return resnet50(input_shape, num_classes, mean, std, config.sync_batchnorm, config.dropout)
  raise ValueError(f"unknown model {config.name!r}")
