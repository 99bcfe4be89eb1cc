"""The one input gradient every attack uses, safe under mixed precision.

Under `mixed_float16` the classifier computes in float16 while its logits are
float32. The gradient of a loss w.r.t. the logits of a confidently classified
example is tiny (softmax probabilities ~1e-8), and it underflows to 0 when it
is cast to float16 on its way back through the network: sign(0) = 0 and
sign-gradient attacks (PGD, APGD) stall on exactly the examples they must
break. `value_and_gradient` avoids this: it differentiates the objective
w.r.t. the float32 logits first, rescales each example's row to max-abs 1 (a
positive per-example factor), back-propagates that through the network with
`output_gradients`, and undoes the factor in float32. Signs are unchanged and
magnitudes are exact up to float16 rounding (FAB needs them).

`unscaled_value_and_gradient` is the naive tape gradient, kept as the
reference that shows the underflow (tests use it); attacks never call it.
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.tensors import rows

LogitsFn = Callable[[tf.Tensor], tf.Tensor]
Objective = Callable[[tf.Tensor], tf.Tensor]  # float32 logits [B, K] -> [B]


def value_and_gradient(logits_fn: LogitsFn, images: tf.Tensor,
                       objective: Objective, *, exact_scale: bool = True
                       ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(logits, values, grad): per-example d objective_b / d images_b.

  Args:
    logits_fn: images -> logits (any float dtype; cast to float32 here).
    images: [B, ...] float32.
    objective: float32 logits [B, K] -> [B] per-example values. Examples
      must be independent (inference-mode BatchNorm), as in every attack.
    exact_scale: undo the per-example rescaling (False returns the gradient
      times a positive per-example factor, enough for sign-based attacks).

  Returns:
    logits [B, K] float32, values [B] float32, grad like `images`, float32
    (zeros where the logits do not depend on the input).
  """
  images = tf.convert_to_tensor(images, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(images)
    logits = tf.cast(logits_fn(images), tf.float32)
  with tf.GradientTape() as inner:
    inner.watch(logits)
    values = objective(logits)
  dlogits = inner.gradient(values, logits)
  if dlogits is None:
    dlogits = tf.zeros_like(logits)
  scale = tf.reduce_max(tf.abs(dlogits), axis=-1)
  scale = tf.where(scale > 0.0, scale, tf.ones_like(scale))
  grad = tape.gradient(logits, images,
                       output_gradients=dlogits / scale[:, None])
  if grad is None:  # Logits independent of the input (or masked).
    grad = tf.zeros_like(images)
  grad = tf.cast(grad, tf.float32)
  if exact_scale:
    grad = grad * rows(scale, grad)
  return logits, values, grad


def unscaled_value_and_gradient(logits_fn: LogitsFn, images: tf.Tensor,
                                objective: Objective, *, exact_scale: bool = True
                                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """The naive tape gradient (underflows under mixed_float16); for tests."""
  del exact_scale
  images = tf.convert_to_tensor(images, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(images)
    logits = tf.cast(logits_fn(images), tf.float32)
    values = objective(logits)
    total = tf.reduce_sum(values)
  grad = tape.gradient(total, images)
  if grad is None:
    grad = tf.zeros_like(images)
  return logits, values, tf.cast(grad, tf.float32)
