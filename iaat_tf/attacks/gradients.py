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

Which scale is exact depends on whether the examples of a batch are
independent under `logits_fn`:

* By default (any function, e.g. a user's `lambda x: model(x, training=True)`)
  the examples may be coupled (train-mode BatchNorm: batch statistics give
  d sum_b objective_b / d x_a cross-example terms that per-row factors would
  re-weight), so the gradient gets ONE batch-wide factor (the largest
  |d objective / d logits| of the batch): it is exactly the batch loss's,
  up to float32 rounding, as the authors' sign(d batch-mean CE / dx). Under
  mixed_float16 the protection is then batch-wide: an example whose logit
  gradient is below about 6e-8 of the batch's largest can still underflow.
* A function marked by `mark_independent` (its examples do not interact:
  inference-mode BatchNorm) gets one positive factor per example row, exact
  there because the Jacobian is block-diagonal, and each example keeps its
  full float16 range. The package's own inference-mode functions carry the
  mark (`training.recipe.attack_logits_fn(..., "inference")`, the
  evaluation's checkpoint and SavedModel functions, foreign models); mark a
  mixed_float16 inference-mode function of your own the same way.

`unscaled_value_and_gradient` is the naive tape gradient, kept as the
reference that shows the underflow (tests use it); attacks never call it.
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.tensors import rows

LogitsFn = Callable[[tf.Tensor], tf.Tensor]
Objective = Callable[[tf.Tensor], tf.Tensor]  # float32 logits [B, K] -> [B]


def value_and_gradient(
  logits_fn: LogitsFn, images: tf.Tensor, objective: Objective, *, exact_scale: bool = True
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(logits, values, grad): per-example d objective_b / d images_b.

  Args:
    logits_fn: images -> logits (any float dtype; cast to float32 here).
    images: [B, ...] float32.
    objective: float32 logits [B, K] -> [B] per-example values. The
      gradient is that of their sum: with independent examples
      (inference-mode BatchNorm) row b is d objective_b / d images_b; with a
      train-mode `logits_fn` it includes the batch statistics'
      cross-example terms.
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
  if not independent_examples(logits_fn):  # One factor for the batch: exact.
    scale = tf.broadcast_to(tf.reduce_max(scale), tf.shape(scale))
  scale = tf.where(scale > 0.0, scale, tf.ones_like(scale))
  grad = tape.gradient(logits, images, output_gradients=dlogits / scale[:, None])
  if grad is None:  # Logits independent of the input (or masked).
    grad = tf.zeros_like(images)
  grad = tf.cast(grad, tf.float32)
  if exact_scale:
    grad = grad * rows(scale, grad)
  return logits, values, grad


def mark_independent(logits_fn: LogitsFn) -> LogitsFn:
  """Marks `logits_fn` as treating every example on its own (inference-mode
  BatchNorm, no batch statistics): its gradients get per-example float16
  protection. Returns it."""
  setattr(logits_fn, "independent_examples", True)  # A function attribute.
  return logits_fn


def independent_examples(logits_fn: LogitsFn) -> bool:
  """Whether `logits_fn` was marked by `mark_independent` (else the examples
  of a batch may be coupled, as under train-mode BatchNorm)."""
  return bool(getattr(logits_fn, "independent_examples", False))


def unscaled_value_and_gradient(
  logits_fn: LogitsFn, images: tf.Tensor, objective: Objective, *, exact_scale: bool = True
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
