"""The authors' modified WRN (authors_wrn.py): size, structure, PyTorch conventions.

The parameter count is the one measured from their PyTorch module; the
conventions that change numbers (symmetric padding of the stride-2 convs,
`F.avg_pool2d` counting its zero padding, zero channels on the shortcut) are
checked against NumPy re-statements of PyTorch's ops on a small instance.
"""

import keras
import numpy as np
import pytest

from iaat_tf import models
from iaat_tf.models import authors_wrn
from iaat_tf.config import ModelConfig


@pytest.fixture(scope="module")
def wrn_32_10():
  keras.utils.set_random_seed(0)
  return authors_wrn.authors_wrn((32, 32, 3), 10, depth=32, width=10)


def test_parameter_count_matches_their_code(wrn_32_10):
  trainable = sum(int(np.prod(w.shape)) for w in wrn_32_10.trainable_weights)
  assert trainable == 46_090_740  # sum(p.numel()) of their WRN(32, 10, 10).


def test_structure(wrn_32_10):
  m = wrn_32_10
  convs = [l for l in m.layers if isinstance(l, keras.layers.Conv2D)]
  bns = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert not any(isinstance(l, keras.layers.Dense) for l in m.layers)
  assert not any(c.use_bias for c in convs)
  assert m.get_layer("conv0").filters == 160  # 16 * width stem.
  for stage, width in enumerate((160, 320, 640)):
    blocks = {l.name.split("_")[1] for l in m.layers if l.name.startswith(f"group{stage}_block")}
    assert len(blocks) == 5  # (32 - 2) // 6 blocks per stage.
    assert m.get_layer(f"group{stage}_block4_conv1").filters == width
  # Downsampling: strided conv + avg-pool/zero-channel shortcut, no 1x1 conv.
  for stage in (1, 2):
    assert m.get_layer(f"group{stage}_block0_conv0").strides == (2, 2)
    assert m.get_layer(f"group{stage}_block0_pool").pool_size == (3, 3)
  assert [c.kernel_size for c in convs].count((1, 1)) == 1  # conv_last only.
  # Every BatchNorm is parameter-free except the last one.
  assert len(bns) == 2 * 15 + 2
  affine = [b.name for b in bns if b.trainable_weights]
  assert affine == ["bn_last"]
  assert m.get_layer("conv_last").filters == 10
  assert isinstance(m.layers[-1], keras.layers.GlobalAveragePooling2D)
  assert m.output.dtype == "float32"


def test_kaiming_fan_out_init(wrn_32_10):
  kernel = wrn_32_10.get_layer("group2_block3_conv0").kernel.numpy()
  expected = np.sqrt(2.0 / (3 * 3 * 640))  # fan_out = out_channels * k * k.
  assert abs(kernel.std() / expected - 1) < 0.02
  assert abs(kernel.mean()) < 0.01 * expected


def _torch_conv(x, w, stride):
  """PyTorch F.conv2d(padding=1) on NHWC / HWIO arrays: pad 1 on every side."""
  x = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
  k = w.shape[0]
  out_h = (x.shape[1] - k) // stride + 1
  out = np.zeros([x.shape[0], out_h, out_h, w.shape[-1]], np.float64)
  for i in range(out_h):
    for j in range(out_h):
      patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
      out[:, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
  return out


def _torch_avg_pool_3x3_s2_p1(x):
  """F.avg_pool2d(x, 3, stride=2, padding=1): zeros counted (count_include_pad)."""
  x = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
  out_h = (x.shape[1] - 3) // 2 + 1
  return np.stack(
    [
      np.stack([x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].mean((1, 2)) for j in range(out_h)], 1)
      for i in range(out_h)
    ],
    1,
  )


def test_downsample_block_follows_pytorch_conventions():
  keras.utils.set_random_seed(1)
  inp = keras.Input((8, 8, 4))
  block = keras.Model(inp, authors_wrn._block(inp, 8, 2, False, "d"))
  x = np.random.RandomState(0).randn(2, 8, 8, 4).astype(np.float32)
  bn = lambda v: v / np.sqrt(1.0 + 1e-5)  # Fresh BatchNorm, inference mode.
  relu = lambda v: np.maximum(v, 0.0)
  w0 = block.get_layer("d_conv0").kernel.numpy()
  w1 = block.get_layer("d_conv1").kernel.numpy()
  h = _torch_conv(relu(bn(x)), w0, stride=2)
  h = _torch_conv(relu(bn(h)), w1, stride=1)
  pooled = _torch_avg_pool_3x3_s2_p1(x)
  shortcut = np.concatenate([pooled, np.zeros_like(pooled)], -1)
  got = block(x, training=False).numpy()
  assert got.shape == (2, 4, 4, 8)
  np.testing.assert_allclose(got, shortcut + h, atol=1e-4)
  # TensorFlow's "same" padding (bottom/right only at stride 2) would differ.
  same = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)
  same.build((None, 8, 8, 4))
  same.kernel.assign(w0)
  assert np.abs(same(relu(bn(x))).numpy() - _torch_conv(relu(bn(x)), w0, 2)).max() > 1e-3


def test_model_registry_builds_it_with_their_normalisation():
  model = models.build_classifier(
    ModelConfig("authors_wrn", depth=8, width=1), (32, 32, 3), 10, "cifar10"
  )
  norm = model.get_layer("standardize")
  np.testing.assert_allclose(np.ravel(norm.mean), authors_wrn.AUTHORS_MEAN, rtol=1e-6)
  np.testing.assert_allclose(np.sqrt(np.ravel(norm.variance)), authors_wrn.AUTHORS_STD, rtol=1e-5)
  logits = model(np.zeros([2, 32, 32, 3], np.float32), training=True)
  assert logits.shape == (2, 10)
  with pytest.raises(ValueError, match="6n\\+2"):
    authors_wrn.authors_wrn((32, 32, 3), 10, depth=28)


@pytest.mark.parametrize("mode,moves", [("inference", False), ("train", True)])
def test_train_mode_attacks_update_running_statistics(mode, moves):
  """--attack_bn_mode=train: every attack forward pass updates BatchNorm's
  running statistics, as the authors' train-mode attacks do."""
  from iaat_tf import attacks  # pylint: disable=g-import-not-at-top
  from iaat_tf.training import recipe  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = authors_wrn.authors_wrn((8, 8, 3), 3, depth=8, width=1)
  x = np.random.RandomState(0).rand(4, 8, 8, 3).astype(np.float32)
  bn = model.get_layer("bn")
  before = bn.moving_mean.numpy().copy()
  attacks.pgd_attack(
    recipe.attack_logits_fn(model, mode),
    x,
    np.zeros(4, np.int64),
    0.03,
    steps=2,
    step_size=0.01,
    index=np.arange(4),
  )
  assert (np.abs(bn.moving_mean.numpy() - before).max() > 1e-3) == moves
