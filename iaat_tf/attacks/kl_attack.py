"""TRADES' attack: projected sign-gradient ascent on KL(p_clean || p_adv).

As in the TRADES code: start at x + 0.001 * N(0, 1), take k signed steps on
the KL divergence between the (fixed) clean prediction and the prediction at
the adversarial point, project to each example's L-inf ball and to [0, 1].
Differences: radii and step sizes are per example ([B]), the Gaussian start
is a stateless draw keyed by (example id, step, salt, seed) like
`noise.per_example_uniform` (so 1 and N replicas draw the same noise), and
the start is projected to the ball (a radius-0 example stays clean, so its
KL term is 0).

`norm="l2"` takes L2-normalised gradient steps and projects onto the L2
ball (`norms.Ball`), the steps of TRADES' own `distance='l_2'` branch
(there an SGD step on delta of the normalised gradient, clamp to [0, 1],
renorm to eps); its step size there is 2 eps / k, which is the default
ratio here too. Two differences from that branch: the projection scales
before it clips (TRADES clips, then scales; both stay feasible), and a
zero gradient gives a zero step (TRADES draws Gaussian noise instead).

The input gradient is one small function, `kl_input_gradient`, so a
precision-safe gradient (e.g. loss scaling for float16) can replace it.
"""

import tensorflow as tf

from iaat_tf.attacks import gradients, norms, objectives, pgd
from iaat_tf.attacks.noise import per_example_normal

START_SCALE = 0.001  # TRADES: x + 0.001 * randn.


def kl_input_gradient(logits_fn: pgd.LogitsFn, x: tf.Tensor, clean_logits: tf.Tensor) -> tf.Tensor:
  """d/dx of KL(p_clean[b] || p(x)[b]) per example, clean logits held fixed.

  Through `gradients.value_and_gradient`, so it does not underflow under
  mixed_float16 (the signs are what the attack uses).
  """
  _, _, grad = gradients.value_and_gradient(
    logits_fn, x, lambda logits: objectives.kl_divergence(clean_logits, logits), exact_scale=False
  )
  return grad


def kl_attack(
  logits_fn: pgd.LogitsFn,
  images: tf.Tensor,
  eps: tf.Tensor,
  *,
  steps: int,
  step_size: tf.Tensor,
  index: tf.Tensor | None = None,
  step=0,
  salt: int = 0,
  seed: int = 0,
  gradient_fn=kl_input_gradient,
  norm: str = "linf",
) -> tf.Tensor:
  """TRADES' adversarial images: |x_adv - x| <= eps (in `norm`), in [0, 1].

  Args:
    logits_fn: images -> float32 logits (inference mode, like every attack).
    images: [B, H, W, C] float32 in [0, 1].
    eps, step_size: [B] per-example radii and step sizes (scalars broadcast).
    index, step, salt, seed: key of the Gaussian start.
    gradient_fn: (logits_fn, x, clean_logits) -> input gradient.
    norm: "linf" or "l2" (`norms.NORMS`).
  Labels are not needed: the attack moves away from the clean prediction.
  Gradients do not flow back through the attack.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  batch = tf.shape(images)[0]
  ball = norms.Ball(images, tf.broadcast_to(tf.cast(eps, tf.float32), [batch]), norm)
  step_b = pgd.broadcast_eps(tf.broadcast_to(tf.cast(step_size, tf.float32), [batch]), images)
  clean_logits = tf.stop_gradient(tf.cast(logits_fn(images), tf.float32))
  if index is None:
    index = tf.range(batch, dtype=tf.int64)
  noise = per_example_normal(tf.shape(images), index, step, salt, seed)
  x_adv = ball.project(images + START_SCALE * noise)

  def body(i, x):
    grad = gradient_fn(logits_fn, x, clean_logits)
    return i + 1, ball.step(x, grad, step_b)

  _, x_adv = tf.while_loop(
    lambda i, _: i < steps, body, (tf.constant(0), x_adv), maximum_iterations=steps
  )
  return tf.stop_gradient(x_adv)
