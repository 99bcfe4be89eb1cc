"""Algorithm 2's probes: is each example still correct under an attack at
its stored radius p and at p + gamma?

Only what Algorithm 2 asks is here: which radii are probed (p + gamma and p,
each with its own keyed random start), which examples need an answer, and
which outcome counts. The attacks are the PGD core's (`attacks/pgd.py`:
`pgd.PGD`, `pgd.pgd_run` and its early-stopping and row-subset options).
`ProbeSpec.of(method, attack)` reads the settings once; its `outcomes`
answers in one of three ways, chosen by `MethodConfig` (`alg2_preset`):

* exact (the default, as in the authors' `epsilon_select`): both probes are
  the training attack itself (`craft`, made by `recipe.make_pgd`);
* the probe options (probe_steps, probe_step_ratio, probe_batched,
  probe_early_stop, probe_only_needed; `--alg2_preset=fast`): the same random
  starts (keyed by index, step, salt, seed) and step-size rule, less work;
* `probe_source="training"` (`--alg2_preset=reuse`): no probe attacks; the
  training attack at p is the probe at p and a short extension of it the
  probe at p + gamma (`from_training_attack`).

Both return (up_fails, same_fails): [B] bool, still correct under the probe
at p + gamma, at p. The radius rule that reads them is
`radius.algorithm2_update`. BatchNorm: the probes run in `logits_fn`'s mode;
in inference mode every example's outcome is its own, in train mode batch
statistics couple the examples of a batch (as in the authors' code).
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from iaat_tf.attacks import noise, pgd
from iaat_tf.config import AttackConfig, MethodConfig

# (images, labels, eps, index, step, salt) -> adversarial images.
CraftFn = Callable[..., tf.Tensor]


def training_attack(attack: AttackConfig, seed: int = 0) -> pgd.PGD:
  """The training attack's PGD (k steps of max(eps * ratio, min_step) in
  `attack.norm`, keyed random start): the exact probes are this attack."""
  return pgd.PGD(
    steps=attack.steps,
    step_ratio=attack.ratio,
    min_step=attack.min_step,
    random_start=attack.random_start,
    norm=attack.norm,
    seed=seed,
  )


def reuses_training_attack(method: MethodConfig) -> bool:
  """True for iaat with `probe_source="training"` (`--alg2_preset=reuse`)."""
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


@dataclasses.dataclass(frozen=True)
class ProbeSpec:
  """How Algorithm 2's two questions are answered for a run (`of`).

  gamma: the radius step (the probes run at p + gamma and at p).
  probe: the probe attack's PGD (the probe options; under reuse the
    extension's: `probe_extra_steps` steps of the attack's rule, no start).
  exact: both probes are the training attack (`craft`).
  reuse: the probes come from the training attack (`from_training_attack`).
  batched: both probes as one run on the doubled batch [x; x].
  only_needed: probe only the examples whose outcome Algorithm 2 uses.
  """

  gamma: float
  probe: pgd.PGD
  exact: bool = True
  reuse: bool = False
  batched: bool = False
  only_needed: bool = False

  @classmethod
  def of(cls, method: MethodConfig, attack: AttackConfig, seed: int = 0) -> "ProbeSpec":
    """The probes `method` asks for, around the training attack `attack`."""
    trains = training_attack(attack, seed)
    if reuses_training_attack(method):
      extension = dataclasses.replace(trains, steps=method.probe_extra_steps, random_start=False)
      return cls(method.gamma, extension, exact=False, reuse=True)
    probe = dataclasses.replace(
      trains,
      steps=method.probe_steps or attack.steps,
      step_ratio=method.probe_step_ratio or attack.ratio,
      early_stop=method.probe_early_stop,
    )
    return cls(
      method.gamma,
      probe,
      exact=is_exact_algorithm2(method, attack),
      batched=method.probe_batched,
      only_needed=method.probe_only_needed,
    )

  def outcomes(
    self,
    logits_fn: pgd.LogitsFn,
    images,
    labels,
    *,
    index,
    stored,
    clean_ok,
    step,
    craft: CraftFn | None = None,
  ):
    """(up_fails, same_fails) from probe attacks: the training attack
    (`craft`, needed when `exact`) twice when `exact`, else the probe
    options (`_fast`)."""
    if self.exact:
      if craft is None:
        raise ValueError("the exact probes are the training attack: pass craft=")
      return self._exact(craft, logits_fn, images, labels, index, stored, step)
    return self._fast(logits_fn, images, labels, index, stored, clean_ok, step)

  def _exact(self, craft: CraftFn, logits_fn, images, labels, index, stored, step):
    """Both probes with the training attack, in the authors' order
    (epsilon_select): the attack at p, the one at p + gamma, then one forward
    pass on each. Outcomes do not depend on the order; under train-mode
    BatchNorm the running statistics (moved by every pass) do."""
    x_same = craft(images, labels, stored, index, step, noise.Salt.PROBE_SAME)
    x_up = craft(images, labels, stored + self.gamma, index, step, noise.Salt.PROBE_UP)
    same_fails = pgd.is_correct(logits_fn(x_same), labels)
    up_fails = pgd.is_correct(logits_fn(x_up), labels)
    return up_fails, same_fails

  def _fast(self, logits_fn, images, labels, index, stored, clean_ok, step):
    """The probe options: `probe` from the exact algorithm's random starts.

    batched: both probes in one run on [x; x] with radii [p + gamma; p].
    only_needed: the p + gamma probe runs on clean-correct examples only,
    the probe at p only where the p + gamma probe broke (Algorithm 2 ignores
    the other outcomes); batched, both run on clean-correct examples.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.cast(labels, tf.int32)
    stored = tf.cast(stored, tf.float32)
    up_eps = stored + self.gamma
    x_up = self.probe.start(images, up_eps, index, step, noise.Salt.PROBE_UP)
    x_same = self.probe.start(images, stored, index, step, noise.Salt.PROBE_SAME)
    needed = clean_ok if self.only_needed else None
    if self.batched:
      both = lambda t: tf.concat([t, t], 0)
      run = self.probe.run(
        logits_fn,
        both(images),
        both(labels),
        tf.concat([up_eps, stored], 0),
        tf.concat([x_up, x_same], 0),
        rows=None if needed is None else both(needed),
      )
      up_fails, same_fails = tf.split(run.correct, 2)
      return up_fails, same_fails
    up_fails = self.probe.run(logits_fn, images, labels, up_eps, x_up, rows=needed).correct
    same_needed = None if needed is None else needed & ~up_fails
    same_fails = self.probe.run(logits_fn, images, labels, stored, x_same, rows=same_needed).correct
    return up_fails, same_fails

  def from_training_attack(self, logits_fn: pgd.LogitsFn, images, labels, x_adv, stored):
    """(up_fails, same_fails) of Algorithm 2 from the training attack's example.

    `x_adv` is the training attack at the stored radius p (the batch trains
    at p under reuse). Its outcome is the probe at p; the probe at
    p + gamma is `probe` (`probe_extra_steps` PGD steps in the larger ball)
    started from `x_adv` (no random start; step max((p + gamma) * ratio,
    min_step), the attack's rule), so it continues an attack that has
    already run k steps. The first step's logits, at `x_adv`, give the
    outcome at p (`judge_start`): the whole cost is probe_extra_steps
    forward+backward passes and one forward pass per image.

    The whole batch runs every step (static shapes), in `logits_fn`'s
    BatchNorm mode. Call it before the training forward pass (which moves
    BatchNorm's running statistics) and so before the optimizer update: the
    outcomes are against the model the training attack attacked.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.cast(labels, tf.int32)
    up_eps = tf.cast(stored, tf.float32) + self.gamma
    run = self.probe.run(logits_fn, images, labels, up_eps, x_adv, judge_start=True)
    return run.correct, run.start_correct
