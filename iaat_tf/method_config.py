"""The training method's options: `MethodConfig` and the training attack's `AttackConfig`.

The method (standard, PGD-AT, IAAT, the cheap rule), IAAT's radius schedule,
the loss, Algorithm 2's probes and their presets (`alg2_preset`), and the
PGD that trains. Sections of a run's `Config` (config.py, which re-exports
every name here: `from iaat_tf.config import MethodConfig` is how the
package names them); the fields work as config.py's do (`options.option`).
"""

import dataclasses
import typing
from typing import Iterable, Literal, Optional

from iaat_tf.options import ConfigError, Section, document_fields, option

Method = Literal["standard", "pgd_at", "iaat", "iaat_cheap"]
BnMode = Literal["inference", "train"]
CheapSignal = Literal["inference", "train_forward"]
# What clean-misclassified examples (S-) train on under iaat: "clean", their
# clean image (the paper, Algorithm 1 line 10); "adversarial", the training
# attack at the radius Algorithm 2 stored for them (0.9 p with beta 0.1), as
# the authors' code does (docs/DEPARTURES.md).
SMinusRule = Literal["clean", "adversarial"]
Loss = Literal["ce", "trades", "mart"]  # The training loss, orthogonal to --method.
TrainAttack = Literal["pgd", "fgsm_rs"]
ProbeEarlyStop = Literal["none", "batch", "example"]
# --norm: the threat model of every training attack and of validation
# (attacks/norms.py); radii, gamma, eps_max and step sizes are in its units
# (the flags' defaults per norm: cli/flags_config.RADIUS_DEFAULTS).
Norm = Literal["linf", "l2"]
# Where Algorithm 2's outcomes come from (MethodConfig.probe_source): "attacks",
# two probe attacks of their own before the training attack (the algorithm);
# "training", the training attack at the stored radius and a short extension
# of it (probes.ProbeSpec.from_training_attack; docs/speed.md).
ProbeSource = Literal["attacks", "training"]
Alg2Preset = Literal["exact", "fast", "reuse"]  # docs/speed.md

# The same values as tuples, for code that lists or tests them.
METHODS, BN_MODES, CHEAP_SIGNALS, S_MINUS_RULES, LOSSES, TRAIN_ATTACKS = (
  typing.get_args(t) for t in (Method, BnMode, CheapSignal, SMinusRule, Loss, TrainAttack)
)
PROBE_EARLY_STOP, NORMS, PROBE_SOURCES, ALG2_PRESETS = (
  typing.get_args(t) for t in (ProbeEarlyStop, Norm, ProbeSource, Alg2Preset)
)
# The methods with a per-example radius table.
ADAPTIVE_METHODS = ("iaat", "iaat_cheap")
# --train_attack=fgsm_rs: FGSM with a random start (Wong et al. 2020, "Fast is
# better than free"): a random start (L-inf: uniform in the eps cube, as
# theirs; L2: on the eps sphere, ours), one step of 1.25 eps, projected back.
# Their code attacks in train mode: --attack_bn_mode=train; ours defaults to
# inference mode.
FGSM_RS = {"steps": 1, "step_ratio": 1.25, "min_step": 0.0, "random_start": True}
FAST_METHODS = ("pgd_at", "iaat_cheap")  # What fgsm_rs trains with.
# The --help groups of these fields (config.py lists every group in order).
METHOD, PROBES, LOSS, ATTACK = (
  "Method (radius schedule)",
  "Algorithm 2's probes (speed)",
  "Loss",
  "Training attack",
)
# The MethodConfig fields an Algorithm 2 preset sets (`alg2_preset`).
PROBE_FIELDS = (
  "probe_steps",
  "probe_step_ratio",
  "probe_batched",
  "probe_early_stop",
  "probe_only_needed",
  "probe_source",
  "probe_extra_steps",
)


@dataclasses.dataclass(frozen=True)
class AttackConfig(Section):
  """PGD used during training (k steps, step = max(eps * ratio, min_step)).

  `step_ratio` 0 (the default) ties the step to k as the authors' code does:
  ratio = 2 / k, i.e. step = max(eps / (0.5 k), min_step) (0.2 at k = 10).
  """

  steps: int = option(
    10, "PGD steps (k) in training attacks.", flag="pgd_steps", group=ATTACK, minimum=1
  )
  step_ratio: float = option(
    0.0,
    "PGD step = max(eps * ratio, pgd_min_step); 0 (default): ratio 2/k, the "
    "authors' max(eps / (0.5 k), 2/255) rule.",
    flag="pgd_step_ratio",
    group=ATTACK,
    minimum=0,
  )
  min_step: float = option(
    2.0 / 255, "Smallest PGD step size.", flag="pgd_min_step", group=ATTACK, radius=True
  )
  random_start: bool = option(
    True, "Uniform random start in the eps ball.", flag="pgd_random_start", group=ATTACK
  )
  bn_mode: BnMode = option(
    "inference",
    "BatchNorm mode while attacking: inference (default) or train (authors' code).",
    flag="attack_bn_mode",
    group=ATTACK,
  )
  # XLA on the attack function alone: set by --jit_compile=attack.
  jit_compile: bool = option(False, "XLA on the attack function (--jit_compile=attack).", flag=None)
  name: TrainAttack = option(
    "pgd",
    "pgd (--pgd_steps steps; the --pgd_* flags) or fgsm_rs (FGSM with a "
    "random start, Wong et al. 2020: uniform start in the L-inf ball, on the sphere "
    "under --norm=l2; one step of 1.25 eps; BatchNorm per --attack_bn_mode, theirs "
    "is train; replaces --pgd_steps, --pgd_step_ratio, --pgd_min_step and "
    "--pgd_random_start). fgsm_rs trains --method=pgd_at (FGSM-RS) or iaat_cheap "
    "(adaptive radii at one attack step).",
    flag="train_attack",
    group=ATTACK,
  )
  norm: Norm = option(
    "linf",
    "Threat model of every training attack and of validation: linf or l2 "
    "(radii, gamma, eps_max and step sizes in its units; docs/methods.md).",
    group=METHOD,
  )

  @classmethod
  def fgsm_rs(cls, **kwargs) -> "AttackConfig":
    """FGSM with a random start (FGSM_RS), e.g. AttackConfig.fgsm_rs(bn_mode=...)."""
    return cls(name="fgsm_rs", **{**FGSM_RS, **kwargs})

  @property
  def ratio(self) -> float:
    """The step ratio in force: `step_ratio`, or 2 / steps when it is 0.

    Safe before validation (steps < 1 is refused by `validate`).
    """
    return self.step_ratio if self.step_ratio > 0 else 2.0 / max(self.steps, 1)


@dataclasses.dataclass(frozen=True)
class MethodConfig(Section):
  """The training method and IAAT's radius schedule (docs/ALGORITHM.md).

  `alg2_preset` names the Algorithm 2 preset; its probe_* values are filled
  in by `with_alg2_preset(attack)` (the command line does, and explicit
  probe_* flags win), so config.json holds both the name and the values
  the run used.
  """

  method: Method = option("iaat", f"One of {', '.join(METHODS)}.", group=METHOD)
  eps: float = option(
    8.0 / 255, "PGD-AT radius; IAAT warmup radius eps_w.", group=METHOD, radius=True
  )
  warmup_epochs: int = option(
    10, "IAAT: epochs at uniform eps before adapting.", group=METHOD, minimum=0
  )
  gamma: float = option(1.9 / 255, "IAAT: radius step.", group=METHOD, radius=True)
  beta: float = option(
    0.1,
    "IAAT: weight of the new radius in eps <- beta*new + (1-beta)*old.",
    group=METHOD,
    minimum=0,
    maximum=1,
  )
  eps_max: float = option(
    1.0, "IAAT: upper clip of every radius (inf: none).", group=METHOD, radius=True
  )
  cheap_beta: float = option(
    0.0,
    "iaat_cheap: smoothing weight of the new radius (0: none, the paper's rule).",
    group=METHOD,
    minimum=0,
    maximum=1,
  )
  cheap_signal: CheapSignal = option(
    "inference",
    "iaat_cheap: judge the training attack's outcome in an "
    "inference-mode forward pass (inference) or from the training forward pass "
    "(train_forward, free).",
    group=METHOD,
  )
  s_minus: SMinusRule = option(
    "clean",
    "iaat: what clean-misclassified examples train on: clean (their clean "
    "image, the paper's Algorithm 1) or adversarial (the training attack at their "
    "stored radius, as the authors' code does).",
    group=METHOD,
  )
  loss: Loss = option(
    "ce",
    "Training loss: ce (on the adversarial example), trades or mart; any --method.",
    group=LOSS,
  )
  trades_beta: float = option(
    6.0, "TRADES: weight of KL(clean || adversarial).", group=LOSS, minimum=0
  )
  mart_beta: float = option(
    6.0, "MART: weight of the misclassification-weighted KL.", group=LOSS, minimum=0
  )
  eps_ramp_epochs: int = option(
    0,
    "Ramp the training radius linearly (per step) from 0 to --eps over N epochs "
    "(pgd_at, IAAT warmup; 0: none).",
    group=METHOD,
    minimum=0,
  )
  alg2_preset: Alg2Preset = option(
    "exact",
    "iaat: Algorithm 2's probes, exact (two probe attacks like the "
    "training attack), fast (shorter probes that stop early) or reuse "
    "(no probe attacks: the training attack and a short extension of "
    "it; experiments/iaat_cost); the probe_* flags below override a "
    "preset's values.",
    group=PROBES,
  )
  # Algorithm 2's two probe attacks (training/probes.py). The defaults
  # are the exact algorithm: both probes are the training attack.
  probe_steps: int = option(
    0, "iaat: PGD steps of each probe attack (0: --pgd_steps).", group=PROBES, minimum=0
  )
  probe_step_ratio: float = option(
    0.0,
    "iaat: probe step = max(eps * ratio, pgd_min_step) (0: --pgd_step_ratio).",
    group=PROBES,
    minimum=0,
  )
  probe_batched: bool = option(
    False, "iaat: run both probes as one attack on a doubled batch.", group=PROBES
  )
  probe_early_stop: ProbeEarlyStop = option(
    "none",
    "iaat: none (exact), batch (stop a probe once every example is "
    "misclassified) or example (also drop misclassified examples from the probe "
    "each step).",
    group=PROBES,
  )
  probe_only_needed: bool = option(
    False,
    "iaat: probe only the examples whose outcome Algorithm 2 uses "
    "(clean-correct; the probe at eps only where eps+gamma broke).",
    group=PROBES,
  )
  probe_source: ProbeSource = option(
    "attacks",
    "iaat: attacks (Algorithm 2: two probe attacks, then the training attack "
    "at the chosen radius) or training (one attack: train at the stored radius; that "
    "attack's outcome is the probe at eps, --probe_extra_steps steps started from its "
    "example the probe at eps+gamma; the choice is stored for the next epoch).",
    group=PROBES,
  )
  probe_extra_steps: int = option(
    1,
    "iaat with --probe_source=training: PGD steps of the eps+gamma probe, started "
    "from the training attack's example.",
    group=PROBES,
    minimum=1,
  )

  def with_alg2_preset(self, attack: AttackConfig, given: Iterable[str] = ()) -> "MethodConfig":
    """This config with its `alg2_preset`'s probe_* values for `attack`'s k
    and step ratio (`alg2_preset`), except the fields named in `given` (set
    explicitly, e.g. by a flag: they win; a given `probe_steps` keeps the
    fast preset's rule for the step size)."""
    given = set(given)
    values = alg2_preset(
      self.alg2_preset,
      attack.steps,
      attack.ratio,
      self.probe_steps if "probe_steps" in given else None,
    )
    return dataclasses.replace(self, **{k: v for k, v in values.items() if k not in given})


def alg2_preset(
  name: str, attack_steps: int, attack_step_ratio: float, probe_steps: Optional[int] = None
) -> dict:
  """MethodConfig probe_* values of an Algorithm 2 preset for a k-step attack.

  exact: both probes are the training attack. fast: probes of
  max(1, round(k / 3)) steps (or `probe_steps`) covering the same distance
  as the attack (k * step_ratio radii), that stop per example once
  misclassified and run only on the examples whose outcome Algorithm 2
  uses. Measured in experiments/alg2_fidelity/ALG2_FIDELITY.md and bench/RESULTS.md.
  reuse: no probe attacks; the training attack (at the stored radius) is the
  probe at p and max(1, round(k / 5)) steps started from its example are the
  probe at p + gamma (`--probe_extra_steps` overrides); the choice is stored for the next
  epoch (experiments/iaat_cost).
  """
  if name not in ALG2_PRESETS:
    raise ConfigError(f"unknown --alg2_preset={name!r}; choose one of {', '.join(ALG2_PRESETS)}")
  if name == "exact":
    return {}
  if name == "reuse":
    return {"probe_source": "training", "probe_extra_steps": max(1, round(attack_steps / 5))}
  steps = probe_steps or max(1, round(attack_steps / 3))
  return {
    "probe_steps": steps,
    "probe_step_ratio": attack_step_ratio * attack_steps / steps,
    "probe_early_stop": "example",
    "probe_only_needed": True,
  }


for _cls in (AttackConfig, MethodConfig):
  document_fields(_cls)
