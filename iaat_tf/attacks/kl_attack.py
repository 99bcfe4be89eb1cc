"""TRADES' attack: projected sign-gradient ascent on KL(p_clean || p_adv).

As in the TRADES code: start at x + 0.001 * N(0, 1), take k signed steps on
the KL divergence between the (fixed) clean prediction and the prediction at
the adversarial point, project to each example's L-inf ball and to [0, 1].
Differences: radii and step sizes are per example ([B]), the Gaussian start
is a stateless draw keyed by (example id, step, salt, seed) like
`attacks.per_example_uniform` (so 1 and N replicas draw the same noise), and
the start is projected to the ball (a radius-0 example stays clean, so its
KL term is 0).

The input gradient is one small function, `kl_input_gradient`, so a
precision-safe gradient (e.g. loss scaling for float16) can replace it.
"""

import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.attacks import gradients, objectives

START_SCALE = 0.001  # TRADES: x + 0.001 * randn.


def per_example_normal(shape, index, step, salt: int = 0, seed: int = 0) -> tf.Tensor:
  """Standard normal noise of `shape`, a pure function of (index, step, salt, seed)."""
  u = attacks.per_example_uniform(shape, index, step, salt, seed)
  # u is a multiple of 2**-24 in [0, 1): shift half a bin to stay off 0.
  return tf.math.ndtri(u + 2.0 ** -25)


def kl_input_gradient(logits_fn: attacks.LogitsFn, x: tf.Tensor,
                      clean_logits: tf.Tensor) -> tf.Tensor:
  """d/dx of KL(p_clean[b] || p(x)[b]) per example, clean logits held fixed.

  Through `gradients.value_and_gradient`, so it does not underflow under
  mixed_float16 (the signs are what the attack uses).
  """
  _, _, grad = gradients.value_and_gradient(
      logits_fn, x, lambda logits: objectives.kl_divergence(clean_logits, logits),
      exact_scale=False)
  return grad


def kl_attack(logits_fn: attacks.LogitsFn, images: tf.Tensor, eps: tf.Tensor, *,
              steps: int, step_size: tf.Tensor, index: tf.Tensor | None = None,
              step=0, salt: int = 0, seed: int = 0,
              gradient_fn=kl_input_gradient) -> tf.Tensor:
  """TRADES' adversarial images: |x_adv - x| <= eps per example, in [0, 1].

  Args:
    logits_fn: images -> float32 logits (inference mode, like every attack).
    images: [B, H, W, C] float32 in [0, 1].
    eps, step_size: [B] per-example radii and step sizes (scalars broadcast).
    index, step, salt, seed: key of the Gaussian start.
    gradient_fn: (logits_fn, x, clean_logits) -> input gradient.
  Labels are not needed: the attack moves away from the clean prediction.
  Gradients do not flow back through the attack.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  batch = tf.shape(images)[0]
  eps_b = attacks.broadcast_eps(tf.broadcast_to(tf.cast(eps, tf.float32), [batch]), images)
  step_b = attacks.broadcast_eps(
      tf.broadcast_to(tf.cast(step_size, tf.float32), [batch]), images)
  lower = tf.maximum(images - eps_b, 0.0)
  upper = tf.minimum(images + eps_b, 1.0)
  clean_logits = tf.stop_gradient(tf.cast(logits_fn(images), tf.float32))
  if index is None:
    index = tf.range(batch, dtype=tf.int64)
  noise = per_example_normal(tf.shape(images), index, step, salt, seed)
  x_adv = tf.clip_by_value(images + START_SCALE * noise, lower, upper)

  def body(i, x):
    grad = gradient_fn(logits_fn, x, clean_logits)
    x = tf.clip_by_value(x + step_b * tf.sign(grad), lower, upper)
    return i + 1, x

  _, x_adv = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x_adv),
                           maximum_iterations=steps)
  return tf.stop_gradient(x_adv)
