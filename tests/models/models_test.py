"""Classifiers: the architectures users expect, on [0, 1] inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import models
from iaat_tf.config import ModelConfig


@pytest.mark.parametrize(
  "depth, width, millions", [(28, 10, 36.48), (34, 10, 46.16), (32, 10, 46.16)]
)
def test_wide_resnet_sizes_match_the_literature(depth, width, millions):
  # WRN-28-10 has 36.5M parameters and WRN-34-10 46.2M (CIFAR-10 head);
  # Madry's "WRN-32-10" is the same n=5 network as WRN-34-10.
  model = models.build_classifier(
    ModelConfig("wide_resnet", depth, width), (32, 32, 3), 10, "cifar10"
  )
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable / 1e6 == pytest.approx(millions, rel=0.01)


def test_resnet50_size_and_logits():
  model = models.build_classifier(ModelConfig("resnet50"), (64, 64, 3), 1000, "imagenet2012")
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


def _batchnorms(model):
  return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


def test_resnet50_is_torchvisions_v1_5_layout():
  model = models.build_classifier(ModelConfig("resnet50"), (224, 224, 3), 1000, "imagenet2012")
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable == 25_557_032  # torchvision.models.resnet50().
  assert model.get_layer("stem_pool").output.shape[1:3] == (56, 56)
  # v1.5: the stride of a downsampling block is on its 3x3 conv.
  assert model.get_layer("s1b0_conv1").strides == (1, 1)
  assert model.get_layer("s1b0_conv2").strides == (2, 2)
  assert model.get_layer("avg_pool").output.shape[-1] == 2048
  assert len(_batchnorms(model)) == 53


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "wide_resnet"])
def test_sync_batchnorm_and_dropout_are_honoured(name):
  shape = (32, 32, 3)
  plain = models.build_classifier(ModelConfig(name, depth=10, width=1), shape, 10, "cifar10")
  assert _batchnorms(plain) and not any(l.synchronized for l in _batchnorms(plain))
  assert not any(isinstance(l, keras.layers.Dropout) for l in plain.layers)
  config = ModelConfig(name, depth=10, width=1, sync_batchnorm=True, dropout=0.3)
  model = models.build_classifier(config, shape, 10, "cifar10")
  assert all(l.synchronized for l in _batchnorms(model))
  dropouts = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
  assert dropouts and all(l.rate == 0.3 for l in dropouts)
  # Same parameters as without the options; dropout acts in training only.
  assert model.count_params() == plain.count_params()
  x = tf.random.uniform([4, *shape])
  np.testing.assert_allclose(model(x, training=False), model(x, training=False))
  assert not np.allclose(model(x, training=True), model(x, training=True))


def test_pytorch_convs_are_initialised_apart_and_by_the_seed():
  """Each conv of the ported models gets its own Kaiming draw (a shared
  initializer gave every conv of a shape the same weights, seeded at import),
  and the same --seed gives the same weights."""
  import keras  # pylint: disable=g-import-not-at-top
  from iaat_tf.models import layers as model_layers  # pylint: disable=g-import-not-at-top

  def build(seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 4))
    y = model_layers.torch_conv(model_layers.torch_conv(x, 4, 3, 1, "a"), 4, 3, 1, "b")
    return [v.numpy() for v in keras.Model(x, y).weights]

  first, again, other = build(0), build(0), build(1)
  assert not np.array_equal(first[0], first[1])
  assert all(np.array_equal(u, v) for u, v in zip(first, again))
  assert not np.array_equal(first[0], other[0])
  assert abs(first[0].std() / np.sqrt(2 / (4 * 9)) - 1) < 0.25  # N(0, 2 / fan_out).
