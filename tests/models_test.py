"""Classifiers: the architectures users expect, on [0, 1] inputs."""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import models
from iaat_tf.config import ModelConfig


@pytest.mark.parametrize("depth, width, millions", [
    (28, 10, 36.48), (34, 10, 46.16), (32, 10, 46.16)])
def test_wide_resnet_sizes_match_the_literature(depth, width, millions):
  # WRN-28-10 has 36.5M parameters and WRN-34-10 46.2M (CIFAR-10 head);
  # Madry's "WRN-32-10" is the same n=5 network as WRN-34-10.
  model = models.build_classifier(ModelConfig("wide_resnet", depth, width),
                                  (32, 32, 3), 10, "cifar10")
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable / 1e6 == pytest.approx(millions, rel=0.01)


def test_resnet50_size_and_logits():
  model = models.build_classifier(ModelConfig("resnet50"), (64, 64, 3), 1000,
                                  "imagenet2012")
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable / 1e6 == pytest.approx(25.5, rel=0.02)
  logits = model(tf.random.uniform([2, 64, 64, 3]), training=False)
  assert logits.shape == (2, 1000) and logits.dtype == tf.float32


@pytest.mark.parametrize("name", ["small_cnn", "wide_resnet"])
def test_forward_and_input_standardisation(name):
  config = ModelConfig(name, depth=10, width=1)
  model = models.build_classifier(config, (32, 32, 3), 10, "cifar10")
  x = tf.random.uniform([3, 32, 32, 3])
  logits = model(x, training=False)
  assert logits.shape == (3, 10)
  norm = model.get_layer("standardize")
  mean, std = models.channel_stats("cifar10", 3)
  out = norm(tf.fill([1, 1, 1, 3], 0.5)).numpy().ravel()
  np.testing.assert_allclose(out, (0.5 - np.array(mean)) / np.array(std), rtol=1e-4)


def test_bad_depth_is_rejected():
  with pytest.raises(ValueError, match="6n\\+4"):
    models.wrn_blocks_per_stage(27)
  assert models.wrn_blocks_per_stage(28) == 4 and models.wrn_blocks_per_stage(34) == 5
