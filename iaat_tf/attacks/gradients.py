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

Which scale is exact depends on the BatchNorm mode of `logits_fn`:

* inference mode (the default of every attack): examples are independent,
  the Jacobian is block-diagonal, and one positive factor per example row is
  exact. Each example keeps its full float16 range.
* train mode (`--attack_bn_mode=train`, the authors' code): batch statistics
  couple the examples, so d sum_b objective_b / d x_a has cross-example
  terms, and per-row factors would re-weight them (the sign of the gradient
  would no longer be the batch loss's). A logits function marked
  `couples_batch = True` (`training.batch_steps.attack_logits_fn` marks its
  train-mode ones) gets ONE batch-wide factor (the largest |d objective /
  d logits| of the batch): the gradient is then exactly the batch loss's,
  up to float32 rounding, as the authors' sign(d batch-mean CE / dx). Under
  mixed_float16 the protection is then batch-wide: an example whose logit
  gradient is below about 6e-8 of the batch's largest can still underflow.

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
    objective: float32 logits [B, K] -> [B] per-example values. The
      gradient is that of their sum: with independent examples
      (inference-mode BatchNorm) row b is d objective_b / d images_b; with a
      train-mode `logits_fn` (`couples_batch`), it includes the batch
      statistics' cross-example terms.
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
  if couples_batch(logits_fn):  # One factor for the whole batch: exact.
    scale = tf.broadcast_to(tf.reduce_max(scale), tf.shape(scale))
  scale = tf.where(scale > 0.0, scale, tf.ones_like(scale))
  grad = tape.gradient(logits, images,
                       output_gradients=dlogits / scale[:, None])
  if grad is None:  # Logits independent of the input (or masked).
    grad = tf.zeros_like(images)
  grad = tf.cast(grad, tf.float32)
  if exact_scale:
    grad = grad * rows(scale, grad)
  return logits, values, grad


def couples_batch(logits_fn: LogitsFn) -> bool:
  """Whether `logits_fn` couples the examples of a batch (train-mode BatchNorm)."""
  return bool(getattr(logits_fn, "couples_batch", False))


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
