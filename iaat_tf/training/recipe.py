"""One adversarial training step as a recipe a reader follows top to bottom.

`AdversarialTrainer.train_step` and a custom training loop make the same
calls (docs/python_api.md):

    recipe = TrainingRecipe(classifier, method, attack, seed=0)
    images, labels, index = recipe.batch(inputs, labels)
    plan = recipe.radii_before_attack(images, labels, index,
                                      recipe.stored(table, index),
                                      step=optimizer.iterations, epoch=epoch)
    x_adv, x_train = recipe.attack(images, labels, index, plan)
    judged = recipe.judge(images, labels, x_adv, x_train, plan)
    with tf.GradientTape() as tape:
      loss, logits = recipe.loss(images, x_train, labels, plan)
    ... the optimizer update ...
    recipe.store(table, index, recipe.radii_after_update(
        plan, judged, train_correct=pgd.is_correct(logits, labels)))

Every decision that depends on the method lives here (the stages below),
none in the trainer: the radii before the attack (`Plan`), the attack and
the images trained on, what is judged before the training forward pass
(`Judged`), the loss, and the radii to store. The radius arithmetic is
`radius.py`, Algorithm 2's probes `probes.py`, the table `eps_table.py`.

Order, and the BatchNorm mode each stage assumes:
1. `radii_before_attack`: clean correctness (S+ / S-) in the attack's
   BatchNorm mode (`AttackConfig.bn_mode`; a train-mode pass moves the
   running statistics, as in the authors' code), then Algorithm 2's probes
   (iaat, in the same mode), then the radius ramp.
2. `attack`: the training attack in the attack's BatchNorm mode.
3. `judge`, BEFORE the training forward pass (which moves BatchNorm's
   running statistics): iaat_cheap's outcome in inference mode whatever the
   attack's mode, `--alg2_preset=reuse`'s probes in the attack's mode.
4. `loss`: training mode (batch statistics, dropout).
5. after the update, `radii_after_update` and `store` (a cross-replica
   write, `EpsTable.write`).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from iaat_tf.attacks import gradients, kl_attack, noise, pgd
from iaat_tf.config import ADAPTIVE_METHODS, AttackConfig, MethodConfig
from iaat_tf.validation import check_attack_bn_mode, check_probe_source
from iaat_tf.training import losses, probes, radius
from iaat_tf.training.eps_table import EpsTable


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


def make_pgd(
  logits_fn: pgd.LogitsFn, attack: AttackConfig, seed: int = 0, jit_compile: bool | None = None
) -> probes.CraftFn:
  """A tf.function crafting PGD examples with the training attack's settings.

  Returns craft(images, labels, eps, index, step, salt): k steps (in
  `attack.norm`) of size max(eps * step_ratio, min_step), random start keyed
  by (index, step, salt, seed) (`probes.training_attack`). `jit_compile=True`
  XLA-compiles it; None leaves the choice to an enclosing function (e.g. a
  whole-step XLA train function).
  """
  spec = probes.training_attack(attack, seed)

  def craft(images, labels, eps, index, step, salt):
    return spec.attack(logits_fn, images, labels, eps, index, step, salt)

  if jit_compile is None:
    return tf.function(craft, reduce_retracing=True)
  return tf.function(craft, jit_compile=jit_compile, reduce_retracing=True)


def by_phase(in_warmup, warm, adapt):
  """warm() during the warmup, else adapt(): in Python for a Python bool,
  as a `tf.cond` for a scalar bool tensor (both branches' outputs must then
  have the same structure)."""
  if isinstance(in_warmup, bool):
    return warm() if in_warmup else adapt()
  return tf.cond(in_warmup, warm, adapt)


def training_images(images: tf.Tensor, x_adv: tf.Tensor, clean_rows: tf.Tensor | None) -> tf.Tensor:
  """Algorithm 1, line 10: adversarial images, clean ones where `clean_rows`
  ([B] bool; None: adversarial everywhere)."""
  if clean_rows is None:
    return x_adv
  return tf.where(tf.reshape(clean_rows, [-1, 1, 1, 1]), x_adv, images)


class Plan(NamedTuple):
  """What a step decided before its attack (`radii_before_attack`)."""

  step: tf.Tensor  # The optimizer's step before the update: keys random starts.
  in_warmup: bool | tf.Tensor
  clean_ok: tf.Tensor | None  # [B] bool, correct without attack (S+); None: standard.
  stored: tf.Tensor | None  # [B] the table's radii; None without a table.
  eps: tf.Tensor  # [B] float32, the radii the training attack runs at.
  # [B] bool, S+ (the rest train on their clean image, s_minus="clean");
  # None: every example trains on the attack.
  attacked_rows: tf.Tensor | None

  @property
  def trained_radii(self) -> tf.Tensor:
    """[B] the radius each example trains at: 0 where it trains clean."""
    if self.attacked_rows is None:
      return self.eps
    return self.eps * tf.cast(self.attacked_rows, tf.float32)


class Judged(NamedTuple):
  """The training attack's outcomes, judged before the training forward pass."""

  attack_failed: tf.Tensor | None  # iaat_cheap (inference signal): [B] still correct.
  # --alg2_preset=reuse: (up_fails, same_fails) of ProbeSpec.from_training_attack.
  probe_outcomes: tuple | None


class TrainingRecipe:
  """The stages of one training step for `method` (see the module docstring).

  Holds the compiled attacks (nothing else: no variables); `ramp_steps` > 0
  ramps the training radius (pgd_at's, and the adaptive methods' warmup
  radius) linearly from 0 over that many steps.
  """

  def __init__(
    self,
    classifier: keras.Model,
    method: MethodConfig,
    attack: AttackConfig,
    *,
    seed: int = 0,
    ramp_steps: int = 0,
  ):
    check_attack_bn_mode(attack, method)
    check_probe_source(method)
    self.classifier, self.method, self.attack_config = classifier, method, attack
    self.seed, self.ramp_steps = seed, int(ramp_steps)
    self.adaptive = method.method in ADAPTIVE_METHODS
    jit = True if attack.jit_compile else None
    self.logits_fn = attack_logits_fn(classifier, attack.bn_mode)
    # iaat_cheap judges its attack in inference mode whatever the attack's
    # mode (a train-mode pass would also move the running statistics).
    self.judge_logits_fn = attack_logits_fn(classifier, "inference")
    self.craft = make_pgd(self.logits_fn, attack, seed=seed, jit_compile=jit)
    # Algorithm 2's probes (iaat): their settings, read once.
    self.probes = probes.ProbeSpec.of(method, attack, seed)
    trains = probes.training_attack(attack, seed)
    self._kl_craft = tf.function(
      lambda images, eps, index, step: kl_attack.kl_attack(
        self.logits_fn,
        images,
        eps,
        steps=attack.steps,
        step_size=trains.step_size(eps),
        index=index,
        step=step,
        salt=noise.Salt.TRAIN,
        seed=seed,
        norm=attack.norm,
      ),
      jit_compile=jit,
      reduce_retracing=True,
    )

  @staticmethod
  def batch(inputs, labels):
    """(float32 images, int32 labels, int64 index) of a ({"image", "index"},
    label) batch."""
    return (
      tf.cast(inputs["image"], tf.float32),
      tf.cast(labels, tf.int32),
      tf.cast(inputs["index"], tf.int64),
    )

  def stored(self, table: EpsTable, index) -> tf.Tensor | None:
    """The table's radii of the batch; None for methods without a table."""
    return table.gather(index) if self.adaptive else None

  # -- 1. radii for this batch ------------------------------------------------

  def radii_before_attack(self, images, labels, index, stored, *, step, epoch) -> Plan:
    """Clean correctness, then the batch's training radii.

    * standard: 0; pgd_at: `method.eps` for every example.
    * iaat, iaat_cheap during the warmup (`epoch < warmup_epochs`; `epoch`
      a Python int or a scalar tensor): `eps` for S+, 0 for S-.
    * iaat after it: Algorithm 2's new radii (two probe attacks,
      `probes.py`), or with `probe_source="training"` the stored radii
      (Algorithm 2's choice of the last epoch; this step's choice is stored
      after the update, `radii_after_update`).
    * iaat_cheap after it: the stored radii (0 for S-).
    """
    method = self.method
    step = tf.convert_to_tensor(step)
    in_warmup = epoch < method.warmup_epochs
    if not isinstance(in_warmup, bool):
      in_warmup = tf.convert_to_tensor(in_warmup)
    shape = tf.shape(labels)
    if method.method == "standard":
      return Plan(step, in_warmup, None, None, tf.zeros(shape, tf.float32), None)
    clean_ok = pgd.is_correct(self.logits_fn(images), labels)
    if method.method == "pgd_at":
      eps = tf.fill(shape, tf.constant(method.eps, tf.float32))
      eps = eps * radius.ramp_factor(step, self.ramp_steps) if self.ramp_steps else eps
      return Plan(step, in_warmup, clean_ok, None, eps, None)

    warm = lambda: radius.warmup(method.eps, clean_ok)
    if self.probes.reuse:
      adapt = lambda: tf.cast(stored, tf.float32)
    elif method.method == "iaat":
      adapt = lambda: self._algorithm2(images, labels, index, stored, clean_ok, step)
    else:
      adapt = lambda: radius.zero_if_misclassified(stored, clean_ok)
    eps = by_phase(in_warmup, warm, adapt)
    if self.ramp_steps:  # The warmup radius only.
      eps = tf.where(in_warmup, radius.ramp_factor(step, self.ramp_steps) * eps, eps)
    attacked_rows = clean_ok if method.s_minus == "clean" else None
    return Plan(step, in_warmup, clean_ok, stored, eps, attacked_rows)

  def _algorithm2(self, images, labels, index, stored, clean_ok, step):
    """Algorithm 2: probe at stored + gamma and at stored, then the rule."""
    method = self.method
    up, same = self.probes.outcomes(
      self.logits_fn,
      images,
      labels,
      index=index,
      stored=stored,
      clean_ok=clean_ok,
      step=step,
      craft=self.craft,
    )
    return radius.algorithm2_update(
      stored, up, same, clean_ok, gamma=method.gamma, beta=method.beta, eps_max=method.eps_max
    )

  # -- 2. attack ------------------------------------------------------------

  def attack(self, images, labels, index, plan: Plan):
    """(x_adv, x_train): the loss's training attack at `plan.eps` (TRADES'
    KL attack, else cross-entropy PGD; the clean images for standard) and
    the images trained on (clean for S- under s_minus="clean")."""
    if self.method.method == "standard":
      return images, images
    if self.method.loss == "trades":
      x_adv = self._kl_craft(images, plan.eps, index, plan.step)
    else:
      x_adv = self.craft(images, labels, plan.eps, index, plan.step, noise.Salt.TRAIN)
    return x_adv, training_images(images, x_adv, plan.attacked_rows)

  # -- 3. judged before the training forward pass -----------------------------

  def judge(self, images, labels, x_adv, x_train, plan: Plan) -> Judged:
    """The training attack's outcomes that a method reads, against the model
    it attacked: iaat_cheap's (inference mode, on x_train) and reuse's
    probes (not run during the warmup, which ignores them)."""
    method = self.method
    failed = None
    if method.method == "iaat_cheap" and method.cheap_signal == "inference":
      failed = pgd.is_correct(self.judge_logits_fn(x_train), labels)
    outcomes = None
    if self.probes.reuse:
      nothing = lambda: (tf.zeros(tf.shape(labels), tf.bool),) * 2
      outcomes = by_phase(
        plan.in_warmup,
        nothing,
        lambda: self.probes.from_training_attack(
          self.logits_fn, images, labels, x_adv, plan.stored
        ),
      )
    return Judged(failed, outcomes)

  # -- 4. loss ----------------------------------------------------------------

  def loss(self, images, x_train, labels, plan: Plan):
    """(scalar loss, float32 logits of x_train), in training mode.

    The configured loss (`losses.py`) on `x_train`, plus the classifier's
    regularisation losses; trades and mart also run the clean images. With
    s_minus="clean" an S- example's x_train is its clean image, but the two
    training-mode forwards see different batches (BatchNorm batch
    statistics, dropout), so TRADES'/MART's KL term between them would not
    be 0: it is masked for S- rows, whose loss is then TRADES' CE(clean) or
    MART's boosted CE on the clean image, exactly.
    """
    method = self.method
    logits = tf.cast(self.classifier(x_train, training=True), tf.float32)
    clean_logits = None
    if losses.needs_clean_logits(method.loss):
      clean_logits = tf.cast(self.classifier(images, training=True), tf.float32)
    beta = method.mart_beta if method.loss == "mart" else method.trades_beta
    if clean_logits is not None and plan.attacked_rows is not None:
      beta = beta * tf.cast(plan.attacked_rows, tf.float32)  # No KL term for S-.
    loss = tf.reduce_mean(losses.per_example_loss(method.loss, clean_logits, logits, labels, beta))
    if self.classifier.losses:
      loss += tf.add_n([tf.cast(l, tf.float32) for l in self.classifier.losses])
    return loss, logits

  # -- 5. radii to store --------------------------------------------------------

  def radii_after_update(
    self, plan: Plan, judged: Judged, train_correct: tf.Tensor | None = None
  ) -> tf.Tensor | None:
    """The radii to write to the table; None for methods without one.

    During the warmup, and for iaat, the radii trained at (`plan.eps`).
    After it: reuse, Algorithm 2's choice from `judged.probe_outcomes` (the
    example trains at it next epoch); iaat_cheap, the paper's rule on the
    training attack's outcome (`judged.attack_failed`, or under
    `cheap_signal="train_forward"` `train_correct`, [B] bool: correct in the
    training forward pass), smoothed when `cheap_beta` > 0.
    """
    method = self.method
    if not self.adaptive:
      return None
    if self.probes.reuse:
      up_fails, same_fails = judged.probe_outcomes or (None, None)
      adapt = lambda: radius.algorithm2_update(
        plan.stored,
        up_fails,
        same_fails,
        plan.clean_ok,
        gamma=method.gamma,
        beta=method.beta,
        eps_max=method.eps_max,
      )
    elif method.method == "iaat_cheap":
      failed = judged.attack_failed
      if failed is None:
        if train_correct is None:
          raise ValueError(
            "cheap_signal='train_forward' reads the training forward pass: pass train_correct="
          )
        failed = train_correct
      beta = method.cheap_beta if method.cheap_beta > 0 else None
      adapt = lambda: radius.cheap_update(
        plan.stored, failed, plan.clean_ok, gamma=method.gamma, eps_max=method.eps_max, beta=beta
      )
    else:
      return plan.eps
    return by_phase(plan.in_warmup, lambda: plan.eps, adapt)

  @staticmethod
  def store(table: EpsTable, index, radii: tf.Tensor | None) -> None:
    """Writes the radii to the table (a cross-replica write); nothing for None."""
    if radii is not None:
      table.write(index, radii)
