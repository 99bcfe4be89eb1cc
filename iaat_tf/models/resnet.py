"""ResNet-50 v1.5 (torchvision's layout), random init, logits head.

Like `wide_resnet` it honours `sync_batchnorm` and `dropout` (before the
logits), which `keras.applications.ResNet50` cannot.
"""

import keras
from keras import layers

from iaat_tf.models.layers import batch_norm, standardize, torch_conv


def _bottleneck(x, filters: int, stride: int, sync: bool, name: str):
  """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""
  shortcut = x
  if stride != 1 or x.shape[-1] != 4 * filters:
    shortcut = batch_norm(sync, f"{name}_short_bn")(
      torch_conv(x, 4 * filters, 1, stride, f"{name}_short_conv")
    )
  y = layers.ReLU(name=f"{name}_relu1")(
    batch_norm(sync, f"{name}_bn1")(torch_conv(x, filters, 1, 1, f"{name}_conv1"))
  )
  y = layers.ReLU(name=f"{name}_relu2")(
    batch_norm(sync, f"{name}_bn2")(torch_conv(y, filters, 3, stride, f"{name}_conv2"))
  )
  y = batch_norm(sync, f"{name}_bn3")(torch_conv(y, 4 * filters, 1, 1, f"{name}_conv3"))
  return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet50(
  input_shape, num_classes: int, mean, std, sync_batchnorm: bool = False, dropout: float = 0.0
) -> keras.Model:
  """ResNet-50 v1.5 as torchvision builds it (25.6M parameters, 1000 classes).

  `sync_batchnorm` makes every BatchNorm use cross-replica statistics;
  `dropout` > 0 adds dropout before the logits.
  """
  inputs = keras.Input(shape=input_shape, name="image")
  x = standardize(inputs, mean, std)
  x = torch_conv(x, 64, 7, 2, "stem_conv")
  x = layers.ReLU(name="stem_relu")(batch_norm(sync_batchnorm, "stem_bn")(x))
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
