"""The standard pre-activation WideResNet (Zagoruyko & Komodakis).

Depth 6n+4 (28, 34) or Madry's 6n+2 naming (32-10 is the n=5 network).
Not the IAAT authors' network: that is `authors_wrn.py`.
"""

import keras
from keras import layers

from iaat_tf.models.layers import batch_norm, standardize


def _wrn_block(x, filters: int, stride: int, sync: bool, dropout: float, name: str):
  preact = layers.ReLU(name=f"{name}_relu1")(batch_norm(sync, f"{name}_bn1")(x))
  if stride != 1 or x.shape[-1] != filters:
    shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut")(
      preact
    )
  else:
    shortcut = x
  y = layers.Conv2D(
    filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
  )(preact)
  y = layers.ReLU(name=f"{name}_relu2")(batch_norm(sync, f"{name}_bn2")(y))
  if dropout:
    y = layers.Dropout(dropout)(y)
  y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
  return layers.Add(name=f"{name}_add")([shortcut, y])


def wrn_blocks_per_stage(depth: int) -> int:
  if (depth - 4) % 6 == 0:
    return (depth - 4) // 6
  if (depth - 2) % 6 == 0:  # Madry's WRN-32-10 naming.
    return (depth - 2) // 6
  raise ValueError(f"WideResNet depth must be 6n+4 or 6n+2, got {depth}")


def wide_resnet(
  input_shape,
  num_classes: int,
  mean,
  std,
  depth: int = 28,
  width: int = 10,
  sync_batchnorm: bool = False,
  dropout: float = 0.0,
) -> keras.Model:
  n = wrn_blocks_per_stage(depth)
  inputs = keras.Input(shape=input_shape, name="image")
  x = standardize(inputs, mean, std)
  x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv0")(x)
  for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
    for block in range(n):
      stride = 2 if (stage > 0 and block == 0) else 1
      x = _wrn_block(x, filters, stride, sync_batchnorm, dropout, name=f"s{stage}b{block}")
  x = layers.ReLU()(batch_norm(sync_batchnorm, "final_bn")(x))
  x = layers.GlobalAveragePooling2D()(x)
  outputs = layers.Dense(num_classes, name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name=f"wrn_{depth}_{width}")
