"""APGD (Croce & Hein, 2020): L-inf and L2 Auto-PGD with per-example radii.

APGD is PGD without a step-size hyper-parameter: it starts with a step of
2 * eps, adds momentum (alpha = 0.75), and at checkpoints halves the step of
every example whose loss stopped improving, restarting it from its best point.
It is the first attack of AutoAttack, and much harder to fool by gradient
masking than fixed-step PGD. Two losses are offered:

* "ce": cross-entropy (APGD-CE).
* "dlr": the Difference of Logits Ratio (APGD-DLR), shift and scale invariant
  in the logits: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12), where
  z_pi1 >= z_pi2 >= z_pi3 are the sorted logits (needs >= 3 classes).
* "dlr-targeted": AutoAttack's APGD-T loss towards a target class t,
  -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) (needs >= 4 classes).
* "ce-targeted": -CE(z, t), the targeted loss for 2 or 3 classes.

Everything is TensorFlow graph math on a `logits_fn(images) -> logits`
callable (run the classifier in inference mode), as in `pgd.py`: images are
float32 NHWC in [0, 1], `eps` is one radius per example ([B]). The loop is a
`tf.while_loop` over a fixed number of iterations, usable inside `tf.function`
and XLA. `apgd_attack` is the one entry point; its settings are an
`ApgdOptions`. Input gradients come from `gradients.value_and_gradient`
(full strength under mixed_float16).

Checkpoints follow the reference implementation (AutoAttack's `apgd-pt`), in
integer iterations: the first window is max(int(0.22 n), 1) iterations, each
next window is 0.03 n shorter, but at least max(int(0.06 n), 1) — that is,
p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
At a checkpoint an example's step is halved (and it restarts from its best
point) if at most rho = 0.75 of the steps in the window raised its loss (the
reference's `<=` in `check_oscillation`), or
if neither its step size nor its best loss changed since the last checkpoint.
As in the reference, the first window's first comparison is the first
step's loss against 0 (its `loss_steps[-1]`, not yet written), not against
the start's loss. tests/training/golden_test.py checks every point visited against
the reference's own run.

`norm="l2"` is the reference's L2 version: the start x + eps * t / |t|_2
with t Gaussian (`pgd.uniform_start`, the L2 PGD start), steps along
the L2-normalised gradient, and projection `norms.Ball.project` (the
reference's formula); step size and checkpoints as for L-inf.
"""

import dataclasses
from typing import Callable, NamedTuple, Optional

import tensorflow as tf

from iaat_tf.attacks import gradients, noise, norms, objectives, pgd

LogitsFn = pgd.LogitsFn

MOMENTUM = 0.75
RHO = 0.75


def target_classes(logits: tf.Tensor, rank: int | tf.Tensor) -> tf.Tensor:
  """[B] the class with the (rank+1)-th highest logit (rank 1: the runner-up).

  AutoAttack's targets for a correctly classified example: rank 1..9.
  """
  order = tf.argsort(tf.cast(logits, tf.float32), axis=-1, direction="DESCENDING", stable=True)
  return tf.gather(order, tf.cast(rank, tf.int32), axis=-1)


def targeted_loss_for(num_classes: int) -> str:
  """AutoAttack's targeted loss where it is defined, else targeted CE."""
  return "dlr-targeted" if num_classes >= 4 else "ce-targeted"


@dataclasses.dataclass(frozen=True)
class ApgdOptions:
  """Settings of one APGD attack.

  n_iter: iterations per run (the reference uses 100).
  loss: "ce", "dlr" (untargeted) or "dlr-targeted", "ce-targeted" (APGD-T;
    then `apgd_attack` needs `targets`).
  restarts: independent runs from different random starts; an example is
    robust only if it survives all of them.
  rho: the step is halved when at most this fraction of a window's steps
    raised the loss.
  random_start: start at a random corner-scaled point of the ball (noise
    keyed by the example index); False starts at the clean image.
  salt, seed: mixed into the noise (see `noise.per_example_uniform`);
    restart r uses salt + Salt.RESTART_STRIDE * r.
  jit_compile: XLA-compile when `apgd_attack` is called eagerly.
  norm: "linf" or "l2", the ball (`norms.NORMS`).
  """

  n_iter: int = 100
  loss: str = "ce"
  restarts: int = 1
  rho: float = RHO
  random_start: bool = True
  salt: int = 0
  seed: int = 0
  jit_compile: bool = False
  norm: str = "linf"

  def __post_init__(self):
    norms.check_norm(self.norm)
    if self.n_iter < 1 or self.restarts < 1:
      raise ValueError(f"n_iter and restarts must be >= 1, got {self.n_iter}, {self.restarts}.")
    if self.loss not in objectives.UNTARGETED and self.loss not in objectives.TARGETED:
      raise ValueError(
        f"Unknown APGD loss {self.loss!r}; expected one of "
        f"{sorted(objectives.UNTARGETED) + sorted(objectives.TARGETED)}."
      )

  @property
  def targeted(self) -> bool:
    return self.loss in objectives.TARGETED


class ApgdResult(NamedTuple):
  """What one APGD call found, per example.

  adversarial: [B, H, W, C] a misclassified point if one was found, else the
    highest-loss point; always within the example's eps ball and [0, 1].
  robust: [B] bool, True iff every point APGD visited (the random start
    included) was classified correctly.
  best_loss: [B] the highest loss seen.
  """

  adversarial: tf.Tensor
  robust: tf.Tensor
  best_loss: tf.Tensor


def checkpoint_schedule(
  n_iter: int, p_init: float = 0.22, p_decrease: float = 0.03, p_min: float = 0.06
) -> list[tuple[int, int]]:
  """The (iteration, window length) of every checkpoint, 0-based iterations.

  The check after iteration `i` looks at the `window` iterations since the
  previous checkpoint (AutoAttack's n_iter_2, size_decr and n_iter_min).
  """
  window = max(int(p_init * n_iter), 1)
  min_window = max(int(p_min * n_iter), 1)
  decrease = max(int(p_decrease * n_iter), 1)
  schedule = []
  i = window - 1
  while i < n_iter:
    schedule.append((i, window))
    window = max(window - decrease, min_window)
    i += window
  return schedule


def _where_rows(cond: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """Per-example select: row b of `a` where cond[b], else of `b`."""
  return tf.where(pgd.broadcast_eps(tf.cast(cond, a.dtype), a) > 0, a, b)


def _random_start(
  images: tf.Tensor, eps_b: tf.Tensor, index: tf.Tensor, step: tf.Tensor | int, salt: int, seed: int
) -> tf.Tensor:
  """The reference's L-inf start: x + eps * t / max|t|, t uniform in [-1, 1]."""
  t = 2.0 * noise.per_example_uniform(tf.shape(images), index, step, salt, seed) - 1.0
  t_max = tf.reduce_max(tf.abs(tf.reshape(t, [tf.shape(t)[0], -1])), axis=1)
  t_max = pgd.broadcast_eps(tf.maximum(t_max, 1e-12), images)
  return images + eps_b * t / t_max


def _single_run(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  *,
  n_iter: int,
  objective: Callable[[tf.Tensor], tf.Tensor],
  rho: float,
  random_start: bool,
  index: tf.Tensor,
  step: tf.Tensor | int,
  salt: int,
  seed: int,
  norm: str = "linf",
) -> ApgdResult:
  """One APGD run (no restarts); see the module docstring."""
  ball = norms.Ball(images, eps, norm)
  x0 = images
  if random_start and norm == "l2":  # On the sphere, clipped to [0, 1].
    x0 = pgd.uniform_start(images, eps, index, step, salt, seed, norm)
  elif random_start:
    x0 = _random_start(images, ball.eps_b, index, step, salt, seed)
  x0 = ball.project(x0)

  def loss_grad_correct(x):
    # Only the gradient's direction is used: no need for its exact scale.
    logits, per_example, grad = gradients.value_and_gradient(
      logits_fn, x, objective, exact_scale=False
    )
    return per_example, grad, pgd.is_correct(logits, labels)

  loss0, grad0, correct0 = loss_grad_correct(x0)
  # Per iteration: the number of loss increases at or below which to halve
  # the step (rho * window) at a checkpoint, or -1 for no checkpoint.
  thresholds = [-1.0] * n_iter
  for i, window in checkpoint_schedule(n_iter):
    thresholds[i] = rho * window
  thresholds = tf.constant(thresholds, tf.float32)

  def body(
    i,
    x,
    x_old,
    grad,
    step_size,
    x_best,
    grad_best,
    loss_best,
    x_best_adv,
    robust,
    loss_prev,
    increases,
    loss_best_last,
    reduced_last,
  ):
    alpha = tf.where(i > 0, MOMENTUM, 1.0)
    step_b = pgd.broadcast_eps(step_size, images)
    momentum = x - x_old
    z = ball.step(x, grad, step_b)
    x_new = ball.project(x + alpha * (z - x) + (1.0 - alpha) * momentum)
    loss, grad_new, correct = loss_grad_correct(x_new)

    x_best_adv = _where_rows(correct, x_best_adv, x_new)
    robust = tf.logical_and(robust, correct)
    improved = loss > loss_best
    x_best = _where_rows(improved, x_new, x_best)
    grad_best = _where_rows(improved, grad_new, grad_best)
    loss_best = tf.where(improved, loss, loss_best)
    increases += tf.cast(loss > loss_prev, tf.float32)

    threshold = thresholds[i]
    is_check = threshold >= 0.0
    oscillating = increases <= threshold  # The reference's `t <= k * k3`.
    stalled = tf.logical_and(tf.logical_not(reduced_last), loss_best_last >= loss_best)
    reduce = tf.logical_and(is_check, tf.logical_or(oscillating, stalled))
    step_size = tf.where(reduce, step_size * 0.5, step_size)
    x_next = _where_rows(reduce, x_best, x_new)
    grad_next = _where_rows(reduce, grad_best, grad_new)
    reduced_last = tf.where(is_check, reduce, reduced_last)
    loss_best_last = tf.where(is_check, loss_best, loss_best_last)
    increases = tf.where(is_check, tf.zeros_like(increases), increases)
    return (
      i + 1,
      x_next,
      x,
      grad_next,
      step_size,
      x_best,
      grad_best,
      loss_best,
      x_best_adv,
      robust,
      loss,
      increases,
      loss_best_last,
      reduced_last,
    )

  # loss_prev starts at 0, not at the start's loss: the reference's first
  # window compares loss_steps[0] with loss_steps[-1], an entry not yet
  # written (0), so its first comparison is "first step's loss > 0".
  state = (
    tf.constant(0),
    x0,
    x0,
    grad0,
    2.0 * eps,
    x0,
    grad0,
    loss0,
    x0,
    correct0,
    tf.zeros_like(loss0),
    tf.zeros_like(loss0),
    loss0,
    tf.ones_like(correct0),
  )
  state = tf.while_loop(lambda i, *_: i < n_iter, body, state, maximum_iterations=n_iter)
  x_best, loss_best, x_best_adv, robust = state[5], state[7], state[8], state[9]
  adversarial = _where_rows(robust, x_best, x_best_adv)
  return ApgdResult(tf.stop_gradient(adversarial), robust, tf.stop_gradient(loss_best))


def _merge(old: ApgdResult, new: ApgdResult) -> ApgdResult:
  """Keeps a misclassified point if either run found one, else the higher loss."""
  take_new = tf.logical_and(
    old.robust, tf.logical_or(tf.logical_not(new.robust), new.best_loss > old.best_loss)
  )
  return ApgdResult(
    _where_rows(take_new, new.adversarial, old.adversarial),
    tf.logical_and(old.robust, new.robust),
    tf.maximum(old.best_loss, new.best_loss),
  )


def _attack_graph(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  index: tf.Tensor,
  step: tf.Tensor | int,
  targets: Optional[tf.Tensor],
  options: ApgdOptions,
) -> ApgdResult:
  """The attack as graph math (no tf.function of its own)."""
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.convert_to_tensor(labels)
  batch = tf.shape(images)[0]
  eps = tf.broadcast_to(tf.cast(eps, tf.float32), [batch])
  objective: Callable[[tf.Tensor], tf.Tensor]
  if options.targeted:
    targeted_loss = objectives.TARGETED[options.loss]
    objective = lambda logits: targeted_loss(logits, labels, targets)
  else:
    loss_fn = objectives.UNTARGETED[options.loss]
    objective = lambda logits: loss_fn(logits, labels)
  result: Optional[ApgdResult] = None
  for r in range(options.restarts):
    run = _single_run(
      logits_fn,
      images,
      labels,
      eps,
      n_iter=options.n_iter,
      objective=objective,
      rho=options.rho,
      random_start=options.random_start,
      index=index,
      step=step,
      salt=int(options.salt) + noise.Salt.RESTART_STRIDE * r,
      seed=options.seed,
      norm=options.norm,
    )
    result = run if result is None else _merge(result, run)
  assert result is not None  # restarts >= 1 (ApgdOptions).
  return result


def apgd_attack(
  logits_fn: LogitsFn,
  images: tf.Tensor,
  labels: tf.Tensor,
  eps: tf.Tensor,
  options: ApgdOptions = ApgdOptions(),
  *,
  index: Optional[tf.Tensor] = None,
  step: tf.Tensor | int = 0,
  targets: Optional[tf.Tensor] = None,
  **overrides,
) -> ApgdResult:
  """APGD inside each example's ball (`options.norm`): the one entry point.

  Args:
    logits_fn: images -> logits (run the classifier in inference mode).
    images: [B, H, W, C] float32 in [0, 1].
    labels: [B] int class ids.
    eps: [B] per-example radii (a scalar is broadcast); 0 leaves the row as is.
    options: an `ApgdOptions`; keyword `overrides` replace its fields, e.g.
      `apgd_attack(f, x, y, eps, n_iter=10, loss="dlr")`.
    index: [B] stable example ids for the noise (default: batch position).
    step: mixed into the noise (see `noise.per_example_uniform`).
    targets: [B] target classes, for the targeted losses (APGD-T); see
      `target_classes`.

  Inside a `tf.function` (or Keras' train/test step) this is inlined graph
  math; to attack many batches, wrap it in your own `tf.function` once.
  Called eagerly it runs as a one-off `tf.function` (XLA-compiled with
  `options.jit_compile`).

  Returns:
    An `ApgdResult`: `adversarial` is within each eps ball and [0, 1]
    (gradients do not flow back through it); `robust` is True iff every
    point visited was classified correctly.
  """
  if overrides:
    options = dataclasses.replace(options, **overrides)
  if options.targeted and targets is None:
    raise ValueError(f"APGD loss {options.loss!r} needs `targets`.")
  images = tf.convert_to_tensor(images, tf.float32)
  if index is None:
    index = tf.range(tf.shape(images)[0], dtype=tf.int64)
  if targets is None:
    targets = tf.zeros([tf.shape(images)[0]], tf.int32)
  run = lambda x, y, e, i, s, t: _attack_graph(logits_fn, x, y, e, i, s, t, options)
  if tf.executing_eagerly() or options.jit_compile:
    run = tf.function(run, jit_compile=options.jit_compile)
  return run(images, labels, eps, index, step, targets)
