"""The per-batch pieces of adversarial training, as plain functions.

`AdversarialTrainer.train_step` is these functions composed; a custom
training loop can call them directly (see docs/python_api.md):

    craft = batch_steps.make_pgd(logits_fn, attack_config, seed=0)
    clean_ok = batch_steps.clean_correct(logits_fn, images, labels)
    stored = table.gather(index)
    eps = batch_steps.choose_radii(craft, logits_fn, images, labels, index,
                                   stored, clean_ok, method_config,
                                   step=step, in_warmup=epoch < warmup_epochs)
    x_adv = craft(images, labels, eps, index, step, batch_steps.SALT_TRAIN)
    x_train = batch_steps.training_images(images, x_adv, clean_ok)
    ... loss and optimizer step on x_train ...
    table.write(index, batch_steps.radii_to_store(...))

With `probe_source="training"` (`--alg2_preset=reuse`) `choose_radii`
returns the stored radii and the outcomes come from the training attack:
`probes = batch_steps.reuse_outcome(method, logits_fn, images, labels, x_adv,
stored, attack_config, in_warmup)` before the training forward pass (it
moves BatchNorm's running statistics), then `radii_to_store(..., probes=probes)`.

`logits_fn` maps float32 images in [0, 1] to float32 logits and runs the
classifier in the attack's BatchNorm mode (`attack_logits_fn`). Nothing here
owns state: the eps table is `eps_table.EpsTable`, the radius arithmetic is
`radius.py`.
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.attacks import gradients, noise, norms, pgd
from iaat_tf.training import radius
from iaat_tf.config import AttackConfig, MethodConfig
from iaat_tf.tensors import rows

# (images, labels, eps, index, step, salt) -> adversarial images.
CraftFn = Callable[..., tf.Tensor]

ADAPTIVE_METHODS = ("iaat", "iaat_cheap")

# Random-start salts of the training attacks (all salts: `noise.Salt`).
SALT_TRAIN = noise.Salt.TRAIN
SALT_PROBE_UP = noise.Salt.PROBE_UP
SALT_PROBE_SAME = noise.Salt.PROBE_SAME


def attack_logits_fn(classifier, bn_mode: str = "inference") -> pgd.LogitsFn:
  """images -> float32 logits, BatchNorm in `bn_mode` ("inference" or "train").

  An inference-mode function is marked `gradients.mark_independent` (its
  examples do not interact), so `gradients.value_and_gradient` protects each
  example's float16 gradient with its own scale; a train-mode one is not
  (batch statistics couple the examples) and gets the batch loss's gradient
  with one batch-wide scale.
  """
  training = bn_mode == "train"

  def logits_fn(images):
    return tf.cast(classifier(images, training=training), tf.float32)

  return logits_fn if training else gradients.mark_independent(logits_fn)


def make_pgd(logits_fn: pgd.LogitsFn, attack: AttackConfig, seed: int = 0,
             jit_compile: bool | None = None) -> CraftFn:
  """A tf.function crafting PGD examples with the training attack's settings.

  Returns craft(images, labels, eps, index, step, salt): k steps (in
  `attack.norm`) of size max(eps * step_ratio, min_step), random start keyed
  by (index, step, salt, seed). `jit_compile=True` XLA-compiles it; None leaves the choice to
  an enclosing function (e.g. a whole-step XLA train function). The attack
  settings ride along as `craft.attack_config`, `craft.seed` and
  `craft.jit_compile` (Algorithm 2's fast probes read them).
  """

  def craft(images, labels, eps, index, step, salt):
    return pgd.pgd_attack(
        logits_fn, images, labels, eps, steps=attack.steps,
        step_size=pgd.pgd_step_size(eps, attack.ratio, attack.min_step),
        random_start=attack.random_start, index=index, step=step, salt=salt,
        seed=seed, norm=attack.norm)

  if jit_compile is None:
    fn = tf.function(craft, reduce_retracing=True)
  else:
    fn = tf.function(craft, jit_compile=jit_compile, reduce_retracing=True)
  fn.attack_config, fn.seed, fn.jit_compile = attack, seed, jit_compile
  return fn


def clean_correct(logits_fn: pgd.LogitsFn, images: tf.Tensor,
                  labels: tf.Tensor) -> tf.Tensor:
  """[B] bool: the example is classified correctly without attack (S+)."""
  return pgd.is_correct(logits_fn(images), labels)


def attack_fails(craft: CraftFn, logits_fn: pgd.LogitsFn, images, labels,
                 eps, index, step, salt) -> tf.Tensor:
  """[B] bool: still classified correctly under the attack at `eps`."""
  x_adv = craft(images, labels, eps, index, step, salt)
  return pgd.is_correct(logits_fn(x_adv), labels)


# -- Algorithm 2's probes ------------------------------------------------------
#
# The exact algorithm (the default) runs both probes with the training
# attack (`craft`). The options in `MethodConfig` (probe_steps, probe_batched,
# probe_early_stop, probe_only_needed) switch to `probe_fails` below, which
# keeps the same random start (keyed by index, step, salt, seed) and the same
# step-size rule.

def is_exact_algorithm2(method: MethodConfig, attack: AttackConfig | None = None) -> bool:
  """True when no probe option departs from the exact Algorithm 2."""
  steps_same = method.probe_steps in (0, None) or (
      attack is not None and method.probe_steps == attack.steps)
  return (steps_same and not method.probe_batched and
          method.probe_early_stop == "none" and not method.probe_only_needed
          and method.probe_step_ratio == 0 and not reuses_training_attack(method))


def reuses_training_attack(method: MethodConfig) -> bool:
  """True for iaat with `probe_source="training"` (`reuse_probes`)."""
  return method.method == "iaat" and method.probe_source == "training"


def random_start(images, eps, index, step, salt: int, seed: int,
                 enabled: bool = True, norm: str = "linf") -> tf.Tensor:
  """The PGD start of `pgd.pgd_attack` (same noise, same clipping)."""
  images = tf.convert_to_tensor(images, tf.float32)
  if not enabled:
    return images
  return pgd.uniform_start(images, eps, index, step, salt, seed, norm)


def _take(x, idx):
  return tf.gather(x, idx)


def _probe_final(logits_fn, images, labels, x0, eps, step_size, steps, needed,
                 norm):
  """Exact probe semantics: correct at the last iterate. Only `needed` rows run."""
  def run(images, labels, x0, eps, step_size):
    x = pgd.pgd_from(logits_fn, images, labels, x0, eps, step_size, steps,
                         norm=norm)
    return pgd.is_correct(logits_fn(x), labels)

  if needed is None:
    return run(images, labels, x0, eps, step_size)
  idx = tf.where(needed)[:, 0]
  batch = tf.shape(labels, out_type=tf.int64)[:1]

  def subset():
    fails = run(*[_take(t, idx) for t in (images, labels, x0, eps, step_size)])
    return tf.scatter_nd(idx[:, None], fails, batch)

  return tf.cond(tf.size(idx) > 0, subset, lambda: tf.zeros(batch, tf.bool))


def _probe_early_stop(logits_fn, images, labels, x0, eps, step_size, steps,
                      needed, per_example: bool, norm: str):
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
      x_new, logits = pgd.pgd_step(
          logits_fn, x_a, y_a, tf.gather(step_b, idx), ball.take(idx))
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
      cond, body, (tf.constant(0), x0, decided, broken),
      maximum_iterations=steps)

  def last_check():  # The final iterate of the undecided examples.
    idx = tf.where(~decided)[:, 0]
    wrong = ~pgd.is_correct(logits_fn(tf.gather(x, idx)),
                                tf.gather(labels, idx))
    return broken | tf.scatter_nd(idx[:, None], wrong, batch)

  if per_example:
    broken = tf.cond(tf.reduce_all(decided), lambda: broken, last_check)
  else:
    broken = tf.cond(tf.reduce_all(decided), lambda: broken,
                     lambda: broken | (~decided & ~pgd.is_correct(
                         logits_fn(x), labels)))
  return ~broken


def probe_fails(logits_fn: pgd.LogitsFn, images, labels, x0, eps,
                attack: AttackConfig, method: MethodConfig,
                needed=None) -> tf.Tensor:
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
    return _probe_final(logits_fn, images, labels, x0, eps, step_size, steps,
                        needed, attack.norm)
  return _probe_early_stop(logits_fn, images, labels, x0, eps, step_size, steps,
                           needed, per_example=method.probe_early_stop == "example",
                           norm=attack.norm)


def _probe_settings(craft: CraftFn):
  attack = getattr(craft, "attack_config", None)
  if attack is None:
    raise ValueError("Algorithm 2's probe options need a craft function made "
                     "by batch_steps.make_pgd (it carries the attack settings)")
  return attack, getattr(craft, "seed", 0)


def fast_probes(craft: CraftFn, logits_fn: pgd.LogitsFn, images, labels,
                index, stored, clean_ok, method: MethodConfig, step):
  """(up_fails, same_fails) of Algorithm 2 with the probe options on.

  probe_batched: both probes in one call on the doubled batch [x; x] with
  radii [stored + gamma; stored] (random starts keyed as in the exact
  algorithm). probe_only_needed: the +gamma probe runs on clean-correct
  examples only and the probe at `stored` only where the +gamma probe
  succeeded (Algorithm 2 ignores the other results); with probe_batched,
  both run on clean-correct examples.
  """
  attack, seed = _probe_settings(craft)
  images = tf.convert_to_tensor(images, tf.float32)
  stored = tf.cast(stored, tf.float32)
  up_eps = stored + method.gamma
  x_up = random_start(images, up_eps, index, step, SALT_PROBE_UP, seed,
                      attack.random_start, attack.norm)
  x_same = random_start(images, stored, index, step, SALT_PROBE_SAME, seed,
                        attack.random_start, attack.norm)
  needed = clean_ok if method.probe_only_needed else None
  if method.probe_batched:
    both = lambda t: tf.concat([t, t], 0)
    fails = probe_fails(
        logits_fn, both(images), both(labels), tf.concat([x_up, x_same], 0),
        tf.concat([up_eps, stored], 0), attack, method,
        needed=None if needed is None else both(needed))
    up_fails, same_fails = tf.split(fails, 2)
    return up_fails, same_fails
  up_fails = probe_fails(logits_fn, images, labels, x_up, up_eps, attack,
                         method, needed=needed)
  same_needed = None if needed is None else needed & ~up_fails
  same_fails = probe_fails(logits_fn, images, labels, x_same, stored, attack,
                           method, needed=same_needed)
  return up_fails, same_fails


def reuse_probes(logits_fn: pgd.LogitsFn, images, labels, x_adv, stored,
                 attack: AttackConfig, method: MethodConfig):
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
  BatchNorm mode; every example's outcome is its own in inference mode (in
  train mode batch statistics couple them, as for the exact probes).
  Call it before the training forward pass (which moves BatchNorm's running
  statistics) and so before the optimizer update: the outcomes are against
  the model the training attack attacked.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  labels = tf.cast(labels, tf.int32)
  up_eps = tf.cast(stored, tf.float32) + method.gamma
  ball = norms.Ball(images, up_eps, attack.norm)
  step_size = pgd.pgd_step_size(up_eps, attack.ratio, attack.min_step)
  x, logits_at_p = pgd.pgd_step(logits_fn, tf.cast(x_adv, tf.float32), labels,
                                pgd.broadcast_eps(step_size, images), ball)
  same_fails = pgd.is_correct(logits_at_p, labels)
  if method.probe_extra_steps > 1:
    x = pgd.pgd_from(logits_fn, images, labels, x, up_eps, step_size,
                     method.probe_extra_steps - 1, norm=attack.norm)
  up_fails = pgd.is_correct(logits_fn(x), labels)
  return up_fails, same_fails


def reuse_outcome(method: MethodConfig, logits_fn: pgd.LogitsFn, images, labels,
                  x_adv, stored, attack: AttackConfig, in_warmup):
  """`reuse_probes`' outcomes for `radii_to_store`; None unless the method
  uses them. Not run during the warmup, which ignores them (all False)."""
  if not reuses_training_attack(method):
    return None
  nothing = lambda: (tf.zeros(tf.shape(labels), tf.bool),) * 2
  return by_phase(in_warmup, nothing, lambda: reuse_probes(
      logits_fn, images, labels, x_adv, stored, attack, method))


def algorithm2_radii(craft: CraftFn, logits_fn: pgd.LogitsFn, images,
                     labels, index, stored, clean_ok, method: MethodConfig,
                     step) -> tf.Tensor:
  """Algorithm 2: probe at stored + gamma and at stored, then `radius` rules.

  With the default `MethodConfig` both probes are the training attack
  (`craft`), as in the authors' code; the probe options (see `fast_probes`)
  trade exactness for speed.
  """
  gamma = method.gamma
  if is_exact_algorithm2(method, getattr(craft, "attack_config", None)):
    # The authors' order (epsilon_select): the attack at the stored radius,
    # the one at stored + gamma, then one forward pass on each. Outcomes do
    # not depend on it; under train-mode BatchNorm the running statistics
    # (updated by every pass) do.
    x_same = craft(images, labels, stored, index, step, SALT_PROBE_SAME)
    x_up = craft(images, labels, stored + gamma, index, step, SALT_PROBE_UP)
    same_fails = pgd.is_correct(logits_fn(x_same), labels)
    up_fails = pgd.is_correct(logits_fn(x_up), labels)
  else:
    labels = tf.cast(labels, tf.int32)
    up_fails, same_fails = fast_probes(craft, logits_fn, images, labels, index,
                                       stored, clean_ok, method, step)
  return radius.algorithm2_update(stored, up_fails, same_fails, clean_ok,
                                  gamma=gamma, beta=method.beta,
                                  eps_max=method.eps_max)


def by_phase(in_warmup, warm: Callable, adapt: Callable):
  """warm() during the warmup, else adapt(): in Python for a Python bool,
  as a `tf.cond` for a scalar bool tensor (both branches' outputs must then
  have the same structure)."""
  if isinstance(in_warmup, bool):
    return warm() if in_warmup else adapt()
  return tf.cond(in_warmup, warm, adapt)


def choose_radii(craft: CraftFn, logits_fn: pgd.LogitsFn, images, labels,
                 index, stored, clean_ok, method: MethodConfig, *, step,
                 in_warmup) -> tf.Tensor:
  """[B] float32 training radii of this batch for `method.method`.

  * standard: 0; pgd_at: `method.eps` for every example.
  * iaat, iaat_cheap during warmup: `method.eps` for clean-correct examples,
    0 for the rest.
  * iaat after warmup: Algorithm 2's new radii (two probe attacks), or with
    `probe_source="training"` the stored radii (Algorithm 2's choice of the
    last epoch; this step's choice is stored after it, `radii_to_store`).
  * iaat_cheap after warmup: the stored radii (0 for clean-misclassified);
    the table is updated after the step from the attack's outcome.

  `in_warmup` may be a Python bool or a scalar bool tensor.
  """
  labels = tf.cast(labels, tf.int32)
  name = method.method
  if name == "standard":
    return tf.zeros(tf.shape(labels), tf.float32)
  if name == "pgd_at":
    return tf.fill(tf.shape(labels), tf.constant(method.eps, tf.float32))
  if name not in ADAPTIVE_METHODS:
    raise ValueError(f"unknown method {name!r}")
  warm = lambda: radius.warmup(method.eps, clean_ok)
  if reuses_training_attack(method):
    adapt = lambda: tf.cast(stored, tf.float32)
  elif name == "iaat":
    adapt = lambda: algorithm2_radii(craft, logits_fn, images, labels, index,
                                     stored, clean_ok, method, step)
  else:
    adapt = lambda: radius.zero_if_misclassified(stored, clean_ok)
  return by_phase(in_warmup, warm, adapt)


def training_images(images: tf.Tensor, x_adv: tf.Tensor,
                    clean_ok: tf.Tensor | None) -> tf.Tensor:
  """Algorithm 1, line 10: adversarial images for S+, clean images for S-.

  `clean_ok=None` keeps every adversarial image (pgd_at, and iaat with
  `s_minus="adversarial"`, the authors' code).
  """
  if clean_ok is None:
    return x_adv
  return tf.where(tf.reshape(clean_ok, [-1, 1, 1, 1]), x_adv, images)


def clean_for_s_minus(method: MethodConfig, clean_ok: tf.Tensor | None
                      ) -> tf.Tensor | None:
  """The `clean_ok` to pass to `training_images` under `method`.

  Adaptive methods with `s_minus="clean"` (the paper) train S- on the clean
  image; pgd_at, standard and `s_minus="adversarial"` (the authors' code:
  S- trains on the attack at the radius stored for it) keep the attack.
  """
  if method.method in ADAPTIVE_METHODS and method.s_minus == "clean":
    return clean_ok
  return None


def trained_radii(eps_train: tf.Tensor, clean_for_s_minus_: tf.Tensor | None
                  ) -> tf.Tensor:
  """[B] the radius each example was trained at: 0 where it trained clean."""
  eps_train = tf.cast(eps_train, tf.float32)
  if clean_for_s_minus_ is None:
    return eps_train
  return eps_train * tf.cast(clean_for_s_minus_, tf.float32)


def radii_to_store(method: MethodConfig, eps_train, stored, clean_ok,
                   attack_failed, in_warmup, probes=None) -> tf.Tensor:
  """The radii to write to the table after the step (adaptive methods).

  iaat stores the radii it trained at (Algorithm 2's choice, or the warmup
  radius); with `probe_source="training"`, after warmup, Algorithm 2's
  choice from `probes` ((up_fails, same_fails) of `reuse_outcome`), which
  the example trains at in the next epoch. iaat_cheap after warmup applies
  the paper's rule to the training attack's outcome (`attack_failed`, [B]
  bool: still correct under the training attack); `method.cheap_beta` > 0
  adds smoothing.
  """
  if reuses_training_attack(method):
    adapt = lambda: radius.algorithm2_update(
        stored, *probes, clean_ok, gamma=method.gamma, beta=method.beta,
        eps_max=method.eps_max)
  elif method.method == "iaat_cheap":
    beta = method.cheap_beta if method.cheap_beta > 0 else None
    adapt = lambda: radius.cheap_update(stored, attack_failed, clean_ok,
                                        gamma=method.gamma, eps_max=method.eps_max,
                                        beta=beta)
  else:
    return eps_train
  return by_phase(in_warmup, lambda: tf.cast(eps_train, tf.float32), adapt)


def cheap_outcome(method: MethodConfig, logits_fn: pgd.LogitsFn | None,
                  x_train: tf.Tensor, labels: tf.Tensor,
                  train_logits: tf.Tensor | None = None) -> tf.Tensor | None:
  """iaat_cheap's signal for `radii_to_store`; None for the other methods.

  [B] bool: the training attack failed (the example stayed correct), as
  judged against the model it attacked:

  * `method.cheap_signal == "inference"` (the trainer's default): a forward
    pass of `logits_fn` on `x_train`. Pass an inference-mode `logits_fn`
    (the trainer does, whatever the attack's BatchNorm mode) and call it
    BEFORE the training forward pass, which moves BatchNorm's running
    statistics, and so before the optimizer update.
  * "train_forward": the training forward pass's logits (`train_logits`;
    free, but with BatchNorm batch statistics and dropout). None while
    `train_logits` is None, so a step calls this once before its training
    forward pass and, when that gave None, once after it.
  """
  if method.method != "iaat_cheap":
    return None
  if method.cheap_signal == "train_forward":
    return None if train_logits is None else pgd.is_correct(train_logits, labels)
  return pgd.is_correct(logits_fn(x_train), labels)
