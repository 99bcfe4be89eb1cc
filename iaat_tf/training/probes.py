"""Algorithm 2's probes: is each example still correct under an attack at
its stored radius p and at p + gamma?

Three ways to answer, chosen by `MethodConfig`:

* exact (the default, as in the authors' `epsilon_select`): both probes are
  the training attack (`craft`, made by `recipe.make_pgd`), `exact_probes`;
* the probe options (probe_steps, probe_step_ratio, probe_batched,
  probe_early_stop, probe_only_needed): `fast_probes`, the same random start
  (keyed by index, step, salt, seed) and step-size rule, less work;
* `probe_source="training"` (`--alg2_preset=reuse`): no probe attacks; the
  training attack at p is the probe at p and a short extension of it the
  probe at p + gamma, `reuse_probes`.

Every function returns (up_fails, same_fails): [B] bool, still correct
under the probe at p + gamma, at p. The radius rule that reads them is
`radius.algorithm2_update`. BatchNorm: the probes run in `logits_fn`'s mode;
in inference mode every example's outcome is its own, in train mode batch
statistics couple the examples of a batch (as in the authors' code).
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.attacks import noise, norms, pgd
from iaat_tf.config import AttackConfig, MethodConfig
from iaat_tf.tensors import rows

# (images, labels, eps, index, step, salt) -> adversarial images.
CraftFn = Callable[..., tf.Tensor]


def reuses_training_attack(method: MethodConfig) -> bool:
  """True for iaat with `probe_source="training"` (`reuse_probes`)."""
  return method.method == "iaat" and method.probe_source == "training"


def is_exact_algorithm2(method: MethodConfig, attack: AttackConfig | None = None) -> bool:
  """True when no probe option departs from the exact Algorithm 2."""
  steps_same = method.probe_steps in (0, None) or (
    attack is not None and method.probe_steps == attack.steps
  )
  return (
    steps_same
    and not method.probe_batched
    and method.probe_early_stop == "none"
    and not method.probe_only_needed
    and method.probe_step_ratio == 0
    and not reuses_training_attack(method)
  )


def exact_probes(
  craft: CraftFn, logits_fn: pgd.LogitsFn, images, labels, index, stored, gamma: float, step
):
  """Both probes with the training attack, in the authors' order
  (epsilon_select): the attack at p, the one at p + gamma, then one forward
  pass on each. Outcomes do not depend on the order; under train-mode
  BatchNorm the running statistics (moved by every pass) do."""
  x_same = craft(images, labels, stored, index, step, noise.Salt.PROBE_SAME)
  x_up = craft(images, labels, stored + gamma, index, step, noise.Salt.PROBE_UP)
  same_fails = pgd.is_correct(logits_fn(x_same), labels)
  up_fails = pgd.is_correct(logits_fn(x_up), labels)
  return up_fails, same_fails


def algorithm2_outcomes(
  craft: CraftFn,
  logits_fn: pgd.LogitsFn,
  images,
  labels,
  index,
  stored,
  clean_ok,
  attack: AttackConfig,
  method: MethodConfig,
  step,
  seed: int,
):
  """(up_fails, same_fails) from probe attacks: `exact_probes` with the
  default options, else `fast_probes` (`craft` runs the training attack;
  `attack` and `seed` are its settings)."""
  if is_exact_algorithm2(method, attack):
    return exact_probes(craft, logits_fn, images, labels, index, stored, method.gamma, step)
  return fast_probes(logits_fn, images, labels, index, stored, clean_ok, attack, method, step, seed)


def random_start(
  images, eps, index, step, salt: int, seed: int, enabled: bool = True, norm: str = "linf"
) -> tf.Tensor:
  """The PGD start of `pgd.pgd_attack` (same noise, same clipping)."""
  images = tf.convert_to_tensor(images, tf.float32)
  if not enabled:
    return images
  return pgd.uniform_start(images, eps, index, step, salt, seed, norm)


def _probe_final(logits_fn, images, labels, x0, eps, step_size, steps, needed, norm):
  """Exact probe semantics: correct at the last iterate. Only `needed` rows run."""

  def run(images, labels, x0, eps, step_size):
    x = pgd.pgd_from(logits_fn, images, labels, x0, eps, step_size, steps, norm=norm)
    return pgd.is_correct(logits_fn(x), labels)

  if needed is None:
    return run(images, labels, x0, eps, step_size)
  idx = tf.where(needed)[:, 0]
  batch = tf.shape(labels, out_type=tf.int64)[:1]

  def subset():
    fails = run(*[tf.gather(t, idx) for t in (images, labels, x0, eps, step_size)])
    return tf.scatter_nd(idx[:, None], fails, batch)

  return tf.cond(tf.size(idx) > 0, subset, lambda: tf.zeros(batch, tf.bool))


def _probe_early_stop(
  logits_fn, images, labels, x0, eps, step_size, steps, needed, per_example: bool, norm: str
):
  """Early-stopping probe: an example is decided once misclassified.

  An example counts as broken (the attack succeeded) when any iterate, the
  random start included, is misclassified. `per_example=False` ("batch")
  runs the whole batch each step and stops when every example is decided
  (static shapes, XLA-friendly); `per_example=True` ("example") runs only the
  undecided examples each step (dynamic shapes). Rows outside `needed` start
  decided and are never run; their result is meaningless.
  """
  ball = norms.Ball(images, eps, norm)
  step_b = pgd.broadcast_eps(step_size, images)
  batch = tf.shape(labels, out_type=tf.int64)
  decided = tf.zeros(batch, tf.bool) if needed is None else ~needed
  broken = tf.zeros(batch, tf.bool)

  def body(i, x, decided, broken):
    # One PGD step (`pgd.pgd_step`); its logits (at the iterate before the
    # step) decide which examples are already broken.
    if per_example:
      idx = tf.where(~decided)[:, 0]
      x_a = tf.gather(x, idx)
      y_a = tf.gather(labels, idx)
      x_new, logits = pgd.pgd_step(logits_fn, x_a, y_a, tf.gather(step_b, idx), ball.take(idx))
      wrong = ~pgd.is_correct(logits, y_a)
      # Broken rows keep the iterate that broke them.
      x_new = tf.where(rows(wrong, x_a), x_a, x_new)
      x = tf.tensor_scatter_nd_update(x, idx[:, None], x_new)
      wrong_full = tf.scatter_nd(idx[:, None], wrong, batch)
    else:
      x_new, logits = pgd.pgd_step(logits_fn, x, labels, step_b, ball)
      wrong_full = ~pgd.is_correct(logits, labels) & ~decided
      x = tf.where(rows(decided | wrong_full, x), x, x_new)
    return i + 1, x, decided | wrong_full, broken | wrong_full

  cond = lambda i, x, decided, broken: (i < steps) & ~tf.reduce_all(decided)
  _, x, decided, broken = tf.while_loop(
    cond, body, (tf.constant(0), x0, decided, broken), maximum_iterations=steps
  )

  def last_check():  # The final iterate of the undecided examples.
    idx = tf.where(~decided)[:, 0]
    wrong = ~pgd.is_correct(logits_fn(tf.gather(x, idx)), tf.gather(labels, idx))
    return broken | tf.scatter_nd(idx[:, None], wrong, batch)

  if per_example:
    broken = tf.cond(tf.reduce_all(decided), lambda: broken, last_check)
  else:
    broken = tf.cond(
      tf.reduce_all(decided),
      lambda: broken,
      lambda: broken | (~decided & ~pgd.is_correct(logits_fn(x), labels)),
    )
  return ~broken


def probe_fails(
  logits_fn: pgd.LogitsFn,
  images,
  labels,
  x0,
  eps,
  attack: AttackConfig,
  method: MethodConfig,
  needed=None,
) -> tf.Tensor:
  """[B] bool: still correct under a probe attack at `eps` started from `x0`.

  The probe runs `method.probe_steps` steps (0: the attack's k) of size
  max(eps * ratio, min_step) (ratio: `method.probe_step_ratio`, 0: the
  attack's), stopping early per `method.probe_early_stop`. `needed` ([B]
  bool or None) limits the work to the examples whose result is used.
  """
  steps = method.probe_steps or attack.steps
  ratio = method.probe_step_ratio or attack.ratio
  eps = tf.cast(eps, tf.float32)
  step_size = pgd.pgd_step_size(eps, ratio, attack.min_step)
  if method.probe_early_stop == "none":
    return _probe_final(logits_fn, images, labels, x0, eps, step_size, steps, needed, attack.norm)
  return _probe_early_stop(
    logits_fn,
    images,
    labels,
    x0,
    eps,
    step_size,
    steps,
    needed,
    per_example=method.probe_early_stop == "example",
    norm=attack.norm,
  )


def fast_probes(
  logits_fn: pgd.LogitsFn,
  images,
  labels,
  index,
  stored,
  clean_ok,
  attack: AttackConfig,
  method: MethodConfig,
  step,
  seed: int,
):
  """(up_fails, same_fails) of Algorithm 2 with the probe options on.

  probe_batched: both probes in one call on the doubled batch [x; x] with
  radii [stored + gamma; stored] (random starts keyed as in the exact
  algorithm). probe_only_needed: the +gamma probe runs on clean-correct
  examples only and the probe at `stored` only where the +gamma probe
  succeeded (Algorithm 2 ignores the other results); with probe_batched,
  both run on clean-correct examples.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.cast(labels, tf.int32)
  stored = tf.cast(stored, tf.float32)
  up_eps = stored + method.gamma
  x_up = random_start(
    images, up_eps, index, step, noise.Salt.PROBE_UP, seed, attack.random_start, attack.norm
  )
  x_same = random_start(
    images, stored, index, step, noise.Salt.PROBE_SAME, seed, attack.random_start, attack.norm
  )
  needed = clean_ok if method.probe_only_needed else None
  if method.probe_batched:
    both = lambda t: tf.concat([t, t], 0)
    fails = probe_fails(
      logits_fn,
      both(images),
      both(labels),
      tf.concat([x_up, x_same], 0),
      tf.concat([up_eps, stored], 0),
      attack,
      method,
      needed=None if needed is None else both(needed),
    )
    up_fails, same_fails = tf.split(fails, 2)
    return up_fails, same_fails
  up_fails = probe_fails(logits_fn, images, labels, x_up, up_eps, attack, method, needed=needed)
  same_needed = None if needed is None else needed & ~up_fails
  same_fails = probe_fails(
    logits_fn, images, labels, x_same, stored, attack, method, needed=same_needed
  )
  return up_fails, same_fails


def reuse_probes(
  logits_fn: pgd.LogitsFn, images, labels, x_adv, stored, attack: AttackConfig, method: MethodConfig
):
  """(up_fails, same_fails) of Algorithm 2 from the training attack's example.

  `x_adv` is the training attack at the stored radius p (the batch trains
  at p under `probe_source="training"`). Its outcome is the probe at p; the
  probe at p + gamma is `method.probe_extra_steps` PGD steps in the larger
  ball started from `x_adv` (no random start; step max((p + gamma) * ratio,
  min_step), the attack's rule), so it continues an attack that has already
  run k steps. The first step's logits, at `x_adv`, give the outcome at p:
  the whole cost is probe_extra_steps forward+backward passes and one
  forward pass per image.

  The whole batch runs every step (static shapes), in `logits_fn`'s
  BatchNorm mode. Call it before the training forward pass (which moves
  BatchNorm's running statistics) and so before the optimizer update: the
  outcomes are against the model the training attack attacked.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.cast(labels, tf.int32)
  up_eps = tf.cast(stored, tf.float32) + method.gamma
  ball = norms.Ball(images, up_eps, attack.norm)
  step_size = pgd.pgd_step_size(up_eps, attack.ratio, attack.min_step)
  x, logits_at_p = pgd.pgd_step(
    logits_fn, tf.cast(x_adv, tf.float32), labels, pgd.broadcast_eps(step_size, images), ball
  )
  same_fails = pgd.is_correct(logits_at_p, labels)
  if method.probe_extra_steps > 1:
    x = pgd.pgd_from(
      logits_fn,
      images,
      labels,
      x,
      up_eps,
      step_size,
      method.probe_extra_steps - 1,
      norm=attack.norm,
    )
  up_fails = pgd.is_correct(logits_fn(x), labels)
  return up_fails, same_fails
