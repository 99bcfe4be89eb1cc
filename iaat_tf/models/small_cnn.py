"""The small CNN: a few conv layers, no BatchNorm (fast; tests, quick start)."""

import keras
from keras import layers

from iaat_tf.models.layers import standardize


def small_cnn(input_shape, num_classes: int, mean, std, name: str = "small_cnn") -> keras.Model:
  inputs = keras.Input(shape=input_shape, name="image")
  x = standardize(inputs, mean, std)
  x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
  x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
  x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
  x = layers.GlobalAveragePooling2D()(x) if input_shape[0] > 16 else layers.Flatten()(x)
  x = layers.Dense(128, activation="relu")(x)
  outputs = layers.Dense(num_classes, name="logits", dtype="float32")(x)
  return keras.Model(inputs, outputs, name=name)
