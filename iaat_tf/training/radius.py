"""IAAT's radius rules as pure functions of tensors.

Every function maps per-example tensors ([B] float32 radii, [B] bool attack
outcomes and clean correctness) and a few settings to new radii. Nothing here
builds a model, runs an attack or touches the eps table: the trainer (and any
custom training loop) runs the attacks, passes their outcomes in, and writes
the result with `eps_table.EpsTable`.

The rules (docs/ALGORITHM.md):

* Warmup: every clean-correct example trains at the uniform radius `eps_w`,
  the others at 0 (their loss is the clean loss).
* Algorithm 2 (the authors' code): with `stored` the radii of the batch, try
  `stored + gamma`; if that attack fails (the example stays correct) choose
  `stored + gamma`, else `stored` if the attack at `stored` fails, else
  `stored - gamma`. Then zero for clean-misclassified examples, smooth
  (`beta * new + (1 - beta) * old`), clip to [0, eps_max].
* The paper's cheap rule (section 3): `stored + gamma` after a failed
  training attack, `stored - gamma` after a successful one, zero for
  clean-misclassified examples, clipped, with no smoothing (smoothing is an
  explicit option).
"""

import tensorflow as tf

from iaat_tf.tensors import f32


def warmup(eps_w: float, clean_ok: tf.Tensor) -> tf.Tensor:
  """[B] radii during warmup: eps_w for clean-correct examples, else 0."""
  return eps_w * f32(clean_ok)


def algorithm2_choice(
  stored: tf.Tensor, up_fails: tf.Tensor, same_fails: tf.Tensor, gamma: float
) -> tf.Tensor:
  """Algorithm 2's choice before zeroing, smoothing and clipping.

  Args:
    stored: [B] the stored radii p.
    up_fails: [B] bool, the attack at p + gamma failed (still correct).
    same_fails: [B] bool, the attack at p failed.
    gamma: the radius step.
  """
  stored = f32(stored)
  return tf.where(up_fails, stored + gamma, tf.where(same_fails, stored, stored - gamma))


def cheap_choice(stored: tf.Tensor, attack_failed: tf.Tensor, gamma: float) -> tf.Tensor:
  """The paper's cheap rule: p + gamma after a failed attack, else p - gamma."""
  stored = f32(stored)
  return stored + tf.where(attack_failed, gamma, -gamma)


def zero_if_misclassified(selected: tf.Tensor, clean_ok: tf.Tensor) -> tf.Tensor:
  """max(selected * clean_ok, 0): clean-misclassified examples get radius 0."""
  return tf.maximum(f32(selected) * f32(clean_ok), 0.0)


def smooth(stored: tf.Tensor, selected: tf.Tensor, beta: float) -> tf.Tensor:
  """The authors' EMA: beta * new + (1 - beta) * old (beta weighs the new radius)."""
  return beta * f32(selected) + (1.0 - beta) * f32(stored)


def clip(eps: tf.Tensor, eps_max: float) -> tf.Tensor:
  """Clips radii to [0, eps_max]."""
  return tf.clip_by_value(f32(eps), 0.0, eps_max)


def algorithm2_update(
  stored: tf.Tensor,
  up_fails: tf.Tensor,
  same_fails: tf.Tensor,
  clean_ok: tf.Tensor,
  *,
  gamma: float,
  beta: float,
  eps_max: float,
) -> tf.Tensor:
  """Algorithm 2's new radii: choice, zero for S-, smooth, clip."""
  selected = algorithm2_choice(stored, up_fails, same_fails, gamma)
  selected = zero_if_misclassified(selected, clean_ok)
  return clip(smooth(stored, selected, beta), eps_max)


def cheap_update(
  stored: tf.Tensor,
  attack_failed: tf.Tensor,
  clean_ok: tf.Tensor,
  *,
  gamma: float,
  eps_max: float,
  beta: float | None = None,
) -> tf.Tensor:
  """The cheap rule's new radii: +/- gamma, zero for S-, clip.

  `beta=None` (the paper) applies no smoothing; a float smooths like
  Algorithm 2 (`beta * new + (1 - beta) * old`).
  """
  selected = cheap_choice(stored, attack_failed, gamma)
  selected = zero_if_misclassified(selected, clean_ok)
  if beta is not None:
    selected = smooth(stored, selected, beta)
  return clip(selected, eps_max)


def ramp_factor(step, ramp_steps: int) -> tf.Tensor:
  """min(1, step / ramp_steps): the linear radius ramp (1 when ramp_steps <= 0).

  `step` is the optimizer step (0 at the first batch, whose radius is 0).
  """
  if ramp_steps <= 0:
    return tf.constant(1.0, tf.float32)
  return tf.minimum(f32(step) / float(ramp_steps), 1.0)


def growth_per_epoch(method: str, gamma: float, beta: float, cheap_beta: float = 0.0) -> float:
  """The most a radius can grow in one epoch after the warmup.

  Each example's radius is updated once per epoch (once per pass over the
  data). Algorithm 2 (`iaat`) moves it at most to stored + gamma and then
  smooths: stored + beta * gamma. The cheap rule (`iaat_cheap`) adds gamma
  (times `cheap_beta` when it smooths).
  """
  if method == "iaat":
    return beta * gamma
  if method == "iaat_cheap":
    return gamma * (cheap_beta if cheap_beta > 0 else 1.0)
  return 0.0


def recovery_note(
  method: str,
  *,
  eps: float,
  gamma: float,
  beta: float,
  warmup_epochs: int,
  epochs: int,
  cheap_beta: float = 0.0,
) -> str | None:
  """A one-line note when radii at 0 cannot grow back to the warmup radius.

  The warmup stores `eps` only for examples that are correct when clean at
  that moment; the others hold 0 when it ends (most of them early in a run
  from scratch). After it a radius grows by at most `growth_per_epoch` per
  epoch, so an example at 0 reaches at most (epochs - warmup) x growth. When
  that is below `eps`, the run's radii are shaped by its length, not by
  the examples: None otherwise.
  """
  left = epochs - warmup_epochs
  growth = growth_per_epoch(method, gamma, beta, cheap_beta)
  if left <= 0 or growth <= 0 or left * growth >= eps:
    return None
  rule = "beta x gamma" if method == "iaat" else "gamma"
  return (
    f"after the warmup a radius grows by at most {rule} = {growth:.4g} "
    f"per epoch (one update per example per epoch), so in the {left} "
    f"epochs left a radius at 0 (every example misclassified when the "
    f"warmup ends) reaches at most {left * growth:.4g}, below the "
    f"warmup radius --eps={eps:.4g}: train longer (--epochs), raise "
    f"--gamma or --beta, or shorten --warmup_epochs"
  )
