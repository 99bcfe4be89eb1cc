"""The IAAT authors' modified WRN (their `models/wideresnet.py`), in Keras.

This is the network the paper's CIFAR numbers come from, and it is NOT the
standard WideResNet of `models.wide_resnet` (docs/DEPARTURES.md):

* stem: a 3x3 conv from the input to 16 * width channels (160 at width 10);
* three stages of n = (depth - 2) // 6 pre-activation blocks (5 for
  WRN-32-10), widths 16/32/64 * width (160/320/640), two 3x3 convs per block;
* the first block of stages 2 and 3 downsamples: BN-ReLU-conv(stride 2) on
  the residual path, and as shortcut a 3x3 average pool (stride 2, padding 1)
  of the block's raw input concatenated with as many zero channels (no 1x1
  conv);
* no conv has a bias; every BatchNorm has no affine parameters except the
  last one;
* head: ReLU(BN(h)) -> 1x1 conv to the classes -> BatchNorm (affine) ->
  global average pool (no Dense layer);
* init: Kaiming normal, fan_out, ReLU gain (untruncated, as
  `nn.init.kaiming_normal_`);
* the input is standardised inside the model with their constants
  (125.3, 123.0, 113.9)/255 and (63.0, 62.1, 66.7)/255.

PyTorch conventions that change numbers are kept: the stride-2 convs pad one
pixel on every side (TensorFlow's "same" would pad only bottom/right), and
`F.avg_pool2d` counts the zero padding in its average (count_include_pad).
BatchNorm momentum and epsilon are PyTorch's defaults (0.1 / 1e-5, i.e. Keras
momentum 0.9). One difference remains: PyTorch updates the running variance
with the unbiased batch variance, Keras with the biased one (a factor
m / (m - 1), m = batch x height x width values per channel: below 1.0001 at
batch 256 on 32x32 images). The parameter count at 10 classes is
46,090,740, as measured from their code (tests/models/authors_wrn_test.py).
"""

import keras
from keras import layers

from iaat_tf.models.layers import batch_norm, standardize, torch_conv

# The normalisation constants of their model (CIFAR-10 statistics).
AUTHORS_MEAN = (125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0)
AUTHORS_STD = (63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0)


@keras.saving.register_keras_serializable(package="iaat_tf")
class ZeroChannels(layers.Layer):
  """Concatenates as many zero channels as the input has: [x, 0] (NHWC)."""

  def call(self, x):
    return keras.ops.concatenate([x, keras.ops.zeros_like(x)], axis=-1)

  def compute_output_shape(self, input_shape):
    channels = input_shape[-1]
    return (*input_shape[:-1], None if channels is None else 2 * channels)


def blocks_per_stage(depth: int) -> int:
  """Their n = (depth - 2) // 6 blocks per stage (WRN-32-10: 5)."""
  if depth < 8 or (depth - 2) % 6:
    raise ValueError(f"the authors' WRN depth must be 6n+2 with n >= 1 (e.g. 32), got {depth}")
  return (depth - 2) // 6


def _block(x, width: int, stride: int, sync: bool, name: str):
  """Their `Block` (stride 1): x + conv1(relu(bn1(conv0(relu(bn0(x)))))), and
  their `DownsampleBlock` (stride 2): conv0 strided, and as shortcut the
  avg-pooled input with zero channels. BatchNorm without affine parameters."""
  h = layers.ReLU(name=f"{name}_relu0")(batch_norm(sync, f"{name}_bn0", affine=False)(x))
  h = torch_conv(h, width, 3, stride, f"{name}_conv0")
  h = layers.ReLU(name=f"{name}_relu1")(batch_norm(sync, f"{name}_bn1", affine=False)(h))
  h = torch_conv(h, width, 3, 1, f"{name}_conv1")
  shortcut = x
  if stride > 1:
    # F.avg_pool2d(x, 3, stride=2, padding=1): zero padding counted in the mean.
    shortcut = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
    shortcut = layers.AveragePooling2D(3, strides=2, padding="valid", name=f"{name}_pool")(shortcut)
    shortcut = ZeroChannels(name=f"{name}_zeros")(shortcut)
  return layers.Add(name=f"{name}_add")([shortcut, h])


def authors_wrn(
  input_shape,
  num_classes: int,
  depth: int = 32,
  width: int = 10,
  mean=AUTHORS_MEAN,
  std=AUTHORS_STD,
  sync_batchnorm: bool = False,
  name: str | None = None,
) -> keras.Model:
  """The authors' WRN-`depth`-`width`: images in [0, 1] (NHWC) -> logits."""
  n = blocks_per_stage(depth)
  widths = [int(v * width) for v in (16, 32, 64)]
  inputs = keras.Input(shape=input_shape, name="image")
  x = standardize(inputs, mean, std)
  x = torch_conv(x, widths[0], 3, 1, "conv0")
  for stage, w in enumerate(widths):
    for block in range(n):
      stride = 2 if stage > 0 and block == 0 else 1  # The downsampling blocks.
      x = _block(x, w, stride, sync_batchnorm, f"group{stage}_block{block}")
  x = layers.ReLU(name="relu")(batch_norm(sync_batchnorm, "bn", affine=False)(x))
  x = torch_conv(x, num_classes, 1, 1, "conv_last")
  x = batch_norm(sync_batchnorm, "bn_last")(x)
  outputs = layers.GlobalAveragePooling2D(name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name=name or f"authors_wrn_{depth}_{width}")
