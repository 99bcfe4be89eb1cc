"""The typed run configuration, and its validation.

`main.py` builds one `Config` from absl FLAGS (in `cli/flags_config.py`); every
library module receives the part it needs as a frozen dataclass and never
reads FLAGS. `validate()` turns every bad setting into a `ConfigError` with a
one-line message before anything is written to disk.
"""

import dataclasses
from typing import Optional, Tuple

DATASETS = ("digits", "mnist", "cifar10", "cifar100", "imagenet2012", "npz",
            "synthetic")
SYNTHETIC_LIKE = ("digits", "mnist", "cifar10", "cifar100", "imagenet2012")
# wide_resnet: the standard WRN (Zagoruyko & Komodakis); authors_wrn: the IAAT
# authors' modified WRN (authors_wrn.py), the network of the paper's numbers.
MODELS = ("small_cnn", "wide_resnet", "authors_wrn", "resnet50")
METHODS = ("standard", "pgd_at", "iaat", "iaat_cheap")
# The methods with a per-example radius table.
ADAPTIVE_METHODS = ("iaat", "iaat_cheap")
STRATEGIES = ("default", "mirrored", "multi_worker")
BN_MODES = ("inference", "train")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_MODES = ("none", "attack", "step")  # What --jit_compile XLA-compiles.
CHEAP_SIGNALS = ("inference", "train_forward")
# What clean-misclassified examples (S-) train on under iaat: "clean", their
# clean image (the paper, Algorithm 1 line 10); "adversarial", the training
# attack at the radius Algorithm 2 stored for them (0.9 p with beta 0.1), as
# the authors' code does (docs/DEPARTURES.md).
S_MINUS_RULES = ("clean", "adversarial")
# --augment_pad: the crop's padding; the authors' code pads by reflection.
AUGMENT_PADS = ("zeros", "reflect")
WEIGHT_DECAY_TYPES = ("coupled", "decoupled")
# --lr_schedule: step (x lr_decay at each of lr_boundaries, or constant),
# cosine (per step to 0 over the run), onecycle (fast_adversarial's MNIST
# script: linear 0 -> lr at 2/5 of the epochs -> 0), cyclic (their CIFAR
# script: PyTorch's CyclicLR, 0 -> lr at half the steps -> 0, momentum
# cycled 0.9 -> 0.8 -> 0.9); training/runtime.py.
LR_SCHEDULES = ("step", "cosine", "onecycle", "cyclic")
LOSSES = ("ce", "trades", "mart")  # The training loss, orthogonal to --method.
# --train_attack: pgd (k steps, the --pgd_* flags) or fgsm_rs, FGSM with a
# random start (Wong et al. 2020, "Fast is better than free"): a random start
# (L-inf: uniform in the eps cube, as theirs; L2: on the eps sphere, ours),
# one step of 1.25 eps, projected back (FGSM_RS). Their code attacks in
# train mode: --attack_bn_mode=train; ours defaults to inference mode.
TRAIN_ATTACKS = ("pgd", "fgsm_rs")
FGSM_RS = {"steps": 1, "step_ratio": 1.25, "min_step": 0.0, "random_start": True}
FAST_METHODS = ("pgd_at", "iaat_cheap")  # What fgsm_rs trains with.
# Which weights are exported (and tested): best (with --validation_fraction:
# the best-validation epoch's), last (the final raw weights), ema (the final
# weight average, --ema_decay).
EXPORT_MODELS = ("best", "last", "ema")
EARLY_STOPPING_WEIGHTS = ("raw", "ema")  # What robust early stopping watches.
PROBE_EARLY_STOP = ("none", "batch", "example")
# --norm: the threat model of every training attack and of validation
# (attacks/norms.py); radii, gamma, eps_max and step sizes are in its units
# (the flags' defaults per norm: cli/flags_config.RADIUS_DEFAULTS).
NORMS = ("linf", "l2")
# --alg2_preset (docs/speed.md, experiments/alg2_fidelity/ALG2_FIDELITY.md).
ALG2_PRESETS = ("exact", "fast", "reuse")
# Where Algorithm 2's outcomes come from (MethodConfig.probe_source): "attacks",
# two probe attacks of their own before the training attack (the algorithm);
# "training", the training attack at the stored radius and a short extension
# of it (probes.reuse_probes; docs/speed.md).
PROBE_SOURCES = ("attacks", "training")
OPTIMIZERS = ("sgd", "adam")


class ConfigError(ValueError):
  """A user-facing configuration problem; its message is one line."""


def first_line(error: BaseException) -> str:
  """An exception's first message line (or its type's name), for one-line errors."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def alg2_preset(name: str, attack_steps: int, attack_step_ratio: float,
                probe_steps: Optional[int] = None) -> dict:
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
    raise ConfigError(f"unknown --alg2_preset={name!r}; choose one of "
                      f"{', '.join(ALG2_PRESETS)}")
  if name == "exact":
    return {}
  if name == "reuse":
    return {"probe_source": "training",
            "probe_extra_steps": max(1, round(attack_steps / 5))}
  steps = probe_steps or max(1, round(attack_steps / 3))
  return {"probe_steps": steps,
          "probe_step_ratio": attack_step_ratio * attack_steps / steps,
          "probe_early_stop": "example", "probe_only_needed": True}


RUN, DATA, MODEL, METHOD, PROBES, LOSS, ATTACK, OPTIM, EVAL, EARLY = (
    "Run", "Data", "Model", "Method (radius schedule)",
    "Algorithm 2's probes (speed)", "Loss", "Training attack",
    "Optimisation and devices", "Evaluation during and after training",
    "Robust early stopping, weight average")
# The --help groups, in the order they are printed (cli/flags_config.py).
HELP_GROUP_ORDER = (RUN, DATA, MODEL, METHOD, PROBES, LOSS, ATTACK, OPTIM, EVAL, EARLY)


def option(default, help: str, *, flag: Optional[str] = "",  # pylint: disable=redefined-builtin
           group: str = "", minimum: Optional[float] = None, radius: bool = False,
           path: bool = False, choices: Tuple[str, ...] = ()):
  """A config field and its command-line flag, documented once.

  `help` is the flag's help and the field's documentation. `flag` is the
  flag's name ("" : the field's name; None: not a flag, set by other flags).
  `group` is its --help group, `minimum` the smallest value `validate`
  accepts, `choices` the values it accepts (a `Literal` type's values);
  `radius` flags accept fractions (8/255) and default per --norm;
  `path` flags expand ~.
  """
  return dataclasses.field(default=default, metadata={
      "help": help, "flag": flag, "group": group, "minimum": minimum,
      "radius": radius, "path": path, "choices": tuple(choices)})


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def options_of(cls) -> list:
  """(field, flag name) of every field of `cls` that is a flag."""
  out = []
  for field in dataclasses.fields(cls):
    if "help" not in field.metadata or field.metadata["flag"] is None:
      continue
    out.append((field, field.metadata["flag"] or field.name))
  return out


class Section:
  """Base of the config sections: each checks its own fields on construction.

  Every field made with `option(..., choices=, minimum=)` is checked when the
  section is built (and by `dataclasses.replace`): a bad value raises a
  one-line ConfigError naming the flag. Rules across fields and sections are
  in `validate`.
  """

  def __post_init__(self):
    check_fields(self)


def check_fields(section) -> None:
  """ConfigError for a field outside its `choices` or below its `minimum`."""
  for field, flag in options_of(type(section)):
    value, meta = getattr(section, field.name), field.metadata
    if meta["choices"]:
      _check(value in meta["choices"], f"unknown --{flag}={value!r}; choose one "
             f"of {', '.join(meta['choices'])}")
    if meta["minimum"] is not None:
      _check(value >= meta["minimum"], f"--{flag}={value} must be >= {meta['minimum']}")


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  """Where the examples come from and how they are batched."""
  dataset: str = option("digits", f"One of {', '.join(DATASETS)}.", group=DATA,
                        choices=DATASETS)
  data_dir: Optional[str] = option(None, "tfds data directory (mnist/cifar/imagenet).",
                                   group=DATA, path=True)
  manual_dir: Optional[str] = option(None, "tfds manual_dir (ImageNet tar files).",
                                     group=DATA, path=True)
  npz_path: Optional[str] = option(
      None, "For --dataset=npz: file with x, y[, x_test, y_test].", group=DATA, path=True)
  download: bool = option(False, "Let tfds download/prepare missing data.", group=DATA)
  holdout_fraction: float = option(
      0.2, "Test fraction held out (digits, npz without a test split).", group=DATA)
  augment: bool = option(False, "Pad-4 random crop + horizontal flip (CIFAR-style).",
                         group=DATA)
  augment_pad: str = option(
      "zeros", "--augment's padding: zeros or reflect (the authors' code: "
      "T.Pad(4, padding_mode='reflect')).", group=DATA, choices=AUGMENT_PADS)
  batch_size: int = option(128, "Global training batch size.", group=DATA, minimum=1)
  eval_batch_size: int = option(256, "Global evaluation batch size.", group=DATA, minimum=1)
  shuffle_buffer: int = option(
      0, "Shuffle buffer in examples; 0: auto (the whole training set, ImageNet 50,000).",
      group=DATA, minimum=0)
  max_train_examples: int = option(
      0, "Use only the first N training examples (0: all).", group=DATA)
  max_eval_examples: int = option(
      0, "Use only the first N test examples (0: all).", flag="max_test_examples",
      group=DATA)
  image_size: int = option(224, "ImageNet crop size.", group=DATA)
  seed: int = option(0, "Shuffling and augmentation seed (set from --seed).", flag=None)
  num_classes: int = option(
      0, "Number of classes; 0: from the dataset (a label outside it is an error).",
      group=DATA)
  synthetic_like: str = option(
      "cifar10", "For --dataset=synthetic: take image shape and classes from "
      "digits, mnist, cifar10, cifar100 or imagenet2012.", group=DATA)
  synthetic_shape: Tuple[int, ...] = option(
      (), "For --dataset=synthetic: H,W,C overriding --synthetic_like's shape.", group=DATA)
  synthetic_train_examples: int = option(
      1024, "For --dataset=synthetic: training examples.", group=DATA)
  synthetic_test_examples: int = option(
      256, "For --dataset=synthetic: test examples.", group=DATA)
  validation_fraction: float = option(
      0.0, "Hold out this fraction of the training split (fixed by example id, "
      "not --seed) for robust early stopping (0: none).", group=EARLY)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  """The classifier (models/registry.py)."""
  name: str = option(
      "small_cnn", f"One of {', '.join(MODELS)} (wide_resnet: the standard WRN; "
      "authors_wrn: the IAAT authors' modified WRN, docs/DEPARTURES.md).",
      flag="model", group=MODEL, choices=MODELS)
  depth: int = option(28, "WideResNet depth (wide_resnet: 28, 32, 34; authors_wrn: "
                      "6n+2, e.g. 32).", flag="wrn_depth", group=MODEL)
  width: int = option(10, "WideResNet widening factor.", flag="wrn_width", group=MODEL,
                      minimum=1)
  sync_batchnorm: bool = option(
      False, "Synchronise BatchNorm statistics across replicas.", group=MODEL)
  dropout: float = option(0.0, "Dropout rate (wide_resnet: inside each block; "
                          "resnet50: before the logits).", group=MODEL)


@dataclasses.dataclass(frozen=True)
class AttackConfig(Section):
  """PGD used during training (k steps, step = max(eps * ratio, min_step)).

  `step_ratio` 0 (the default) ties the step to k as the authors' code does:
  ratio = 2 / k, i.e. step = max(eps / (0.5 k), min_step) (0.2 at k = 10).
  """
  steps: int = option(10, "PGD steps (k) in training attacks.", flag="pgd_steps",
                      group=ATTACK, minimum=1)
  step_ratio: float = option(
      0.0, "PGD step = max(eps * ratio, pgd_min_step); 0 (default): ratio 2/k, the "
      "authors' max(eps / (0.5 k), 2/255) rule.", flag="pgd_step_ratio", group=ATTACK,
      minimum=0)
  min_step: float = option(2.0 / 255, "Smallest PGD step size.", flag="pgd_min_step",
                           group=ATTACK, radius=True)
  random_start: bool = option(True, "Uniform random start in the eps ball.",
                              flag="pgd_random_start", group=ATTACK)
  bn_mode: str = option(
      "inference", "BatchNorm mode while attacking: inference (default) or train "
      "(authors' code).", flag="attack_bn_mode", group=ATTACK, choices=BN_MODES)
  # XLA on the attack function alone: set by --jit_compile=attack.
  jit_compile: bool = option(False, "XLA on the attack function (--jit_compile=attack).",
                             flag=None)
  name: str = option(
      "pgd", "pgd (--pgd_steps steps; the --pgd_* flags) or fgsm_rs (FGSM with a "
      "random start, Wong et al. 2020: uniform start in the L-inf ball, on the sphere "
      "under --norm=l2; one step of 1.25 eps; BatchNorm per --attack_bn_mode, theirs "
      "is train; replaces --pgd_steps, --pgd_step_ratio, --pgd_min_step and "
      "--pgd_random_start). fgsm_rs trains --method=pgd_at (FGSM-RS) or iaat_cheap "
      "(adaptive radii at one attack step).", flag="train_attack", group=ATTACK,
      choices=TRAIN_ATTACKS)
  norm: str = option(
      "linf", "Threat model of every training attack and of validation: linf or l2 "
      "(radii, gamma, eps_max and step sizes in its units; docs/methods.md).",
      group=METHOD, choices=NORMS)

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
  """The training method and IAAT's radius schedule (docs/ALGORITHM.md)."""
  method: str = option("iaat", f"One of {', '.join(METHODS)}.", group=METHOD,
                       choices=METHODS)
  eps: float = option(8.0 / 255, "PGD-AT radius; IAAT warmup radius eps_w.",
                      group=METHOD, radius=True)
  warmup_epochs: int = option(10, "IAAT: epochs at uniform eps before adapting.",
                              group=METHOD, minimum=0)
  gamma: float = option(1.9 / 255, "IAAT: radius step.", group=METHOD, radius=True)
  beta: float = option(
      0.1, "IAAT: weight of the new radius in eps <- beta*new + (1-beta)*old.",
      group=METHOD)
  eps_max: float = option(1.0, "IAAT: upper clip of every radius (inf: none).",
                          group=METHOD, radius=True)
  cheap_beta: float = option(
      0.0, "iaat_cheap: smoothing weight of the new radius (0: none, the paper's rule).",
      group=METHOD)
  cheap_signal: str = option(
      "inference", "iaat_cheap: judge the training attack's outcome in an "
      "inference-mode forward pass (inference) or from the training forward pass "
      "(train_forward, free).", group=METHOD, choices=CHEAP_SIGNALS)
  s_minus: str = option(
      "clean", "iaat: what clean-misclassified examples train on: clean (their clean "
      "image, the paper's Algorithm 1) or adversarial (the training attack at their "
      "stored radius, as the authors' code does).", group=METHOD, choices=S_MINUS_RULES)
  loss: str = option("ce", "Training loss: ce (on the adversarial example), trades or "
                     "mart; any --method.", group=LOSS, choices=LOSSES)
  trades_beta: float = option(6.0, "TRADES: weight of KL(clean || adversarial).",
                              group=LOSS, minimum=0)
  mart_beta: float = option(6.0, "MART: weight of the misclassification-weighted KL.",
                            group=LOSS, minimum=0)
  eps_ramp_epochs: int = option(
      0, "Ramp the training radius linearly (per step) from 0 to --eps over N epochs "
      "(pgd_at, IAAT warmup; 0: none).", group=METHOD, minimum=0)
  # Algorithm 2's two probe attacks (probes.fast_probes). The defaults
  # are the exact algorithm: both probes are the training attack.
  probe_steps: int = option(0, "iaat: PGD steps of each probe attack (0: --pgd_steps).",
                            group=PROBES, minimum=0)
  probe_step_ratio: float = option(
      0.0, "iaat: probe step = max(eps * ratio, pgd_min_step) (0: --pgd_step_ratio).",
      group=PROBES, minimum=0)
  probe_batched: bool = option(
      False, "iaat: run both probes as one attack on a doubled batch.", group=PROBES)
  probe_early_stop: str = option(
      "none", "iaat: none (exact), batch (stop a probe once every example is "
      "misclassified) or example (also drop misclassified examples from the probe "
      "each step).", group=PROBES, choices=PROBE_EARLY_STOP)
  probe_only_needed: bool = option(
      False, "iaat: probe only the examples whose outcome Algorithm 2 uses "
      "(clean-correct; the probe at eps only where eps+gamma broke).", group=PROBES)
  probe_source: str = option(
      "attacks", "iaat: attacks (Algorithm 2: two probe attacks, then the training attack "
      "at the chosen radius) or training (one attack: train at the stored radius; that "
      "attack's outcome is the probe at eps, --probe_extra_steps steps started from its "
      "example the probe at eps+gamma; the choice is stored for the next epoch).",
      group=PROBES, choices=PROBE_SOURCES)
  probe_extra_steps: int = option(
      1, "iaat with --probe_source=training: PGD steps of the eps+gamma probe, started "
      "from the training attack's example.", group=PROBES, minimum=1)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """Optimisation, devices and run-time settings."""
  epochs: int = option(10, "Training epochs.", group=OPTIM, minimum=1)
  optimizer: str = option("sgd", "sgd or adam.", group=OPTIM, choices=OPTIMIZERS)
  learning_rate: float = option(0.1, "Initial learning rate.", group=OPTIM)
  momentum: float = option(0.9, "SGD momentum.", group=OPTIM)
  weight_decay: float = option(5e-4, "Weight decay (0: none); see --weight_decay_type.",
                               group=OPTIM, minimum=0)
  weight_decay_type: str = option(
      "coupled", "coupled: PyTorch-style L2, wd*w added to the gradient before "
      "momentum (the authors' recipe); decoupled: w -= lr*wd*w after the step (Keras' "
      "weight_decay; with adam this is AdamW).", group=OPTIM, choices=WEIGHT_DECAY_TYPES)
  lr_boundaries: Tuple[int, ...] = option(
      (), "Epochs at which lr *= lr_decay, e.g. 70,90,100.", group=OPTIM)
  lr_decay: float = option(0.2, "Learning-rate factor at each boundary.", group=OPTIM)
  lr_warmup_epochs: int = option(
      0, "Linear learning-rate warmup (Goyal et al. 2017, large-batch ImageNet): step "
      "s of the first N epochs trains at --lr_schedule's rate x (s + 1) / (N x steps "
      "per epoch) (0: none).", group=OPTIM, minimum=0)
  lr_schedule: str = option(
      "step", "step (x --lr_decay at each --lr_boundaries epoch; constant without "
      "them), cosine (per step from --learning_rate to 0 over the run), onecycle "
      "(fast_adversarial's MNIST cycle: linear 0 -> --learning_rate at 2/5 of the "
      "epochs -> 0) or cyclic (their CIFAR cycle, PyTorch's CyclicLR: 0 -> "
      "--learning_rate at half the steps -> 0, SGD momentum cycled --momentum -> 0.8 "
      "-> --momentum).", group=OPTIM, choices=LR_SCHEDULES)
  ema_decay: float = option(
      0.0, "Keep an exponential moving average of the weights with this decay (e.g. "
      "0.999; 0: off), evaluated each validated epoch beside the raw weights "
      "(val_ema_*).", group=EARLY)
  strategy: str = option("default", f"One of {', '.join(STRATEGIES)}.", group=OPTIM,
                         choices=STRATEGIES)
  num_virtual_devices: int = option(
      0, "Split the CPU into N logical devices (testing mirrored).", group=OPTIM,
      minimum=0)
  precision: str = option("float32", f"One of {', '.join(PRECISIONS)}.", group=OPTIM,
                          choices=PRECISIONS)
  jit_compile: str = option(
      "none", "XLA: none, attack (the PGD function), or step (the whole train step; "
      "--strategy=default only).", group=ATTACK, choices=JIT_MODES)
  steps_per_execution: int = option(1, "Train steps per tf.function call.", group=OPTIM,
                                    minimum=1)
  keep_checkpoints: int = option(3, "Checkpoints kept.", group=OPTIM)
  verbose: int = option(
      1, "0: silent; 1: a summary line per epoch (plus Keras' progress bar on a "
      "terminal); 2: Keras' line with every metric.", group=RUN)


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
  """The PGD validation during training and the final test."""
  eps: float = option(8.0 / 255, "Radius of the PGD validation.", flag="eval_eps",
                      group=EVAL, radius=True)
  steps: int = option(10, "PGD steps in evaluation.", flag="eval_pgd_steps", group=EVAL,
                      minimum=1)
  step_size: float = option(2.0 / 255, "PGD step size in validation.",
                            flag="eval_step_size", group=EVAL, radius=True)
  every_epochs: int = option(1, "Validate every N epochs.", flag="eval_every_epochs",
                             group=EVAL)
  max_examples: int = option(1000, "Test examples in the per-epoch validation.",
                             flag="val_examples", group=EVAL)


@dataclasses.dataclass(frozen=True)
class Config(Section):
  """One training run: where it writes, and every section's settings."""
  output_dir: str = option(None, "Directory for checkpoints, SavedModel, results.",
                           group=RUN, path=True)
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  attack: AttackConfig = AttackConfig()
  method: MethodConfig = MethodConfig()
  train: TrainConfig = TrainConfig()
  eval: EvalConfig = EvalConfig()
  seed: int = option(0, "Global seed (weights, shuffling, attack noise).", group=RUN)
  export: bool = option(True, "Export the classifier as a SavedModel at the end.",
                        group=RUN)
  overwrite: bool = option(
      False, "Delete what --output_dir holds and train from scratch (default: resume "
      "an unfinished run; leave a finished one untouched).", group=RUN)
  export_model: str = option(
      "best", "Weights to export (and test): best (with --validation_fraction: the "
      "best-validation epoch's; else the last), last (the final weights) or ema (the "
      "final weight average, --ema_decay).", group=EARLY, choices=EXPORT_MODELS)
  early_stopping_weights: str = option(
      "raw", "With --validation_fraction: the weights whose validation PGD accuracy "
      "picks the best epoch, raw or ema (the weight average; it is then what is saved "
      "as best).", group=EARLY, choices=EARLY_STOPPING_WEIGHTS)

  def to_dict(self):
    return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "attack": AttackConfig,
            "method": MethodConfig, "train": TrainConfig, "eval": EvalConfig}


def _document_fields(cls) -> None:
  """Appends each field's help (and flag) to the class docstring, so that
  `help(iaat_tf.MethodConfig)` shows what the command line shows."""
  lines = ["", "Fields (command-line flag in brackets):"]
  for field in dataclasses.fields(cls):
    if "help" not in field.metadata:
      continue
    flag = field.metadata["flag"]
    flag = "" if flag is None else f" [--{flag or field.name}]"
    lines.append(f"  {field.name}{flag}: {field.metadata['help']}")
  cls.__doc__ = (cls.__doc__ or cls.__name__).rstrip() + "\n" + "\n".join(lines) + "\n"


for _cls in (Config, *SECTIONS.values()):
  _document_fields(_cls)


def parse_radius(name: str, text: str) -> float:
  """'8/255' or '0.03' -> float; ConfigError naming the flag otherwise."""
  try:
    if "/" in str(text):
      num, den = str(text).split("/")
      return float(num) / float(den)
    return float(text)
  except (ValueError, ZeroDivisionError):
    raise ConfigError(f"--{name}={text!r} is not a number or fraction like 8/255") from None


def _check_eps(name: str, value: float, norm: str = "linf") -> None:
  if norm == "l2":  # Any L2 length is a radius; only eps_max may be inf.
    _check(value >= 0 and (value < float("inf") or name == "eps_max"),
           f"--{name}={value} is out of range: an L2 radius is >= 0 and finite")
    return
  _check(0.0 <= value <= 1.0,
         f"--{name}={value} is out of range: radii are on [0, 1] images, "
         f"so use 0 <= {name} <= 1 (e.g. 8/255 = {8/255:.5f}; L2 radii need --norm=l2)")


def check_attack_bn_mode(attack: AttackConfig, method: MethodConfig) -> None:
  """ConfigError for settings that train-mode BatchNorm attacks would change.

  Under `--attack_bn_mode=train` a forward pass normalises with the
  statistics of the batch it sees. The fast Algorithm 2 probes run it on a
  subset (`probe_only_needed`, `probe_early_stop=example`) or on a doubled
  batch (`probe_batched`): each example's outcome would depend on which
  other examples are still undecided, and every such pass would move the
  running statistics towards a subset's. Refused rather than silently
  changing the experiment (the trainer calls this too).
  """
  if attack.bn_mode != "train" or method.method != "iaat":
    return
  subset = [name for name, on in (
      ("--probe_only_needed", method.probe_only_needed),
      ("--probe_early_stop=example", method.probe_early_stop == "example"),
      ("--probe_batched", method.probe_batched)) if on]
  _check(not subset,
         f"{' and '.join(subset)} (e.g. --alg2_preset=fast) run BatchNorm on a "
         "subset or a doubled batch, which --attack_bn_mode=train would make part "
         "of every outcome and of the running statistics; use "
         "--attack_bn_mode=inference or --alg2_preset=exact")


def check_probe_source(method: MethodConfig) -> None:
  """ConfigError when `probe_source="training"` has no PGD attack to reuse.

  Its outcomes are those of the cross-entropy PGD training attack; TRADES
  trains on a KL attack (the trainer calls this too).
  """
  _check(not (method.method == "iaat" and method.probe_source == "training"
              and method.loss == "trades"),
         "--probe_source=training reads Algorithm 2's outcomes from the "
         "cross-entropy PGD training attack, but --loss=trades trains on a KL "
         "attack; use --loss=ce or mart, or --probe_source=attacks")


def validate(config: Config) -> Config:
  """Raises ConfigError with a one-line message for any bad setting."""
  d, m, a, me, t, e = (config.data, config.model, config.attack,
                       config.method, config.train, config.eval)
  _check(bool(config.output_dir), "--output_dir is required")
  # Each section's choices and minimums were checked when it was built
  # (Section.__post_init__); what follows spans fields and sections.
  for name, value in (("eps", me.eps), ("eps_max", me.eps_max),
                      ("gamma", me.gamma), ("eval_eps", e.eps),
                      ("pgd_min_step", a.min_step),
                      ("eval_step_size", e.step_size)):
    _check_eps(name, value, a.norm if a.norm in NORMS else "linf")
  _check(me.eps <= me.eps_max,
         f"--eps={me.eps} is larger than --eps_max={me.eps_max}")
  for name, value in (("beta", me.beta), ("cheap_beta", me.cheap_beta)):
    _check(0.0 <= value <= 1.0, f"--{name}={value} must be in [0, 1]")
  _check(not (t.jit_compile == "step" and t.strategy != "default"),
         f"--jit_compile=step needs --strategy=default (the eps-table write "
         f"under --strategy={t.strategy} is a cross-replica step that XLA "
         "cannot compile); use --jit_compile=attack")
  _check(not (me.method in ADAPTIVE_METHODS and
              me.eps_ramp_epochs > me.warmup_epochs),
         f"--eps_ramp_epochs={me.eps_ramp_epochs} is longer than "
         f"--warmup_epochs={me.warmup_epochs}: under {me.method} the ramp "
         "applies to the warmup radius only")
  _check(0.0 <= d.validation_fraction < 1.0,
         f"--validation_fraction={d.validation_fraction} must be in [0, 1) (0: none)")
  _check(not (t.jit_compile == "step" and (
      me.probe_early_stop == "example" or me.probe_only_needed)),
         "--probe_early_stop=example and --probe_only_needed run the probes on "
         "a data-dependent subset of the batch, which --jit_compile=step cannot "
         "compile; use --jit_compile=attack or none, or --probe_early_stop=batch")
  if me.method == "iaat" and me.probe_source == "training":
    others = [flag for flag, on in (
        ("--probe_steps", me.probe_steps not in (0, a.steps)),
        ("--probe_step_ratio", me.probe_step_ratio != 0),
        ("--probe_batched", me.probe_batched),
        ("--probe_early_stop", me.probe_early_stop != "none"),
        ("--probe_only_needed", me.probe_only_needed)) if on]
    _check(not others, f"--probe_source=training runs no probe attacks, so "
           f"{' and '.join(others)} would do nothing; drop them (its one setting "
           "is --probe_extra_steps)")
  check_probe_source(me)
  _check(0.0 <= t.ema_decay < 1.0, f"--ema_decay={t.ema_decay} must be in [0, 1) (0: off)")
  _check(t.ema_decay > 0 or "ema" not in (config.export_model,
                                          config.early_stopping_weights),
         "--export_model=ema and --early_stopping_weights=ema need a weight "
         "average: set --ema_decay (e.g. 0.999)")
  _check(config.early_stopping_weights == "raw" or d.validation_fraction > 0,
         "--early_stopping_weights=ema watches the held-out validation split: "
         "set --validation_fraction")
  if a.name == "fgsm_rs":
    _check(all(getattr(a, k) == v for k, v in FGSM_RS.items()),
           f"an fgsm_rs attack is {FGSM_RS}; build it with AttackConfig.fgsm_rs()")
    _check(me.method in FAST_METHODS,
           f"--train_attack=fgsm_rs trains --method={' or '.join(FAST_METHODS)} "
           f"(pgd_at: FGSM-RS; iaat_cheap: the cheap rule on it), not {me.method}")
    _check(me.loss == "ce", f"--train_attack=fgsm_rs is a cross-entropy attack; "
           f"--loss={me.loss} crafts its own")
  _check(not (me.s_minus == "adversarial" and me.method != "iaat"),
         f"--s_minus=adversarial is the authors' Algorithm 2 code (--method=iaat); "
         f"under --method={me.method} clean-misclassified examples have radius 0, "
         "so use --s_minus=clean"),
  _check(t.learning_rate > 0, f"--learning_rate={t.learning_rate} must be > 0")
  _check(0.0 < d.holdout_fraction < 1.0,
         f"--holdout_fraction={d.holdout_fraction} must be in (0, 1)")
  _check(all(b > 0 for b in t.lr_boundaries) and
         list(t.lr_boundaries) == sorted(t.lr_boundaries),
         f"--lr_boundaries={list(t.lr_boundaries)} must be increasing positive epochs")
  _check(t.lr_schedule != "cyclic" or (
      t.optimizer == "sgd" and t.weight_decay_type == "coupled" and t.momentum >= 0.8),
         "--lr_schedule=cyclic cycles SGD's momentum between 0.8 and --momentum "
         "as PyTorch's CyclicLR: it needs --optimizer=sgd, "
         "--weight_decay_type=coupled and --momentum >= 0.8")
  _check(not (t.lr_boundaries and t.lr_schedule != "step"),
         f"--lr_boundaries applies to --lr_schedule=step, not {t.lr_schedule}")
  if m.name == "authors_wrn":
    _check(m.depth >= 8 and (m.depth - 2) % 6 == 0,
           f"--wrn_depth={m.depth}: the authors' WRN depth must be 6n+2 "
           "(32: 5 blocks per stage)")
    _check(m.dropout == 0, "--model=authors_wrn has no dropout (their network "
           "has none); use --dropout=0")
  _check(m.depth >= 10 and ((m.depth - 4) % 6 == 0 or (m.depth - 2) % 6 == 0),
         f"--wrn_depth={m.depth}: WideResNet depth must be 6n+4 (28, 34) "
         "or Madry's 6n+2 naming (32)")
  check_attack_bn_mode(a, me)
  _check(not (m.sync_batchnorm and a.bn_mode == "train"),
         "--sync_batchnorm with --attack_bn_mode=train is not supported "
         "(cross-replica BatchNorm inside the attack loop); use "
         "--attack_bn_mode=inference")
  _check(d.num_classes == 0 or d.num_classes >= 2,
         f"--num_classes={d.num_classes} must be >= 2 (or 0: from the dataset)")
  if d.dataset == "synthetic":
    _check(d.synthetic_like in SYNTHETIC_LIKE,
           f"unknown --synthetic_like={d.synthetic_like!r}; choose one of "
           f"{', '.join(SYNTHETIC_LIKE)}")
    _check(min(d.synthetic_train_examples, d.synthetic_test_examples) >= 1,
           "--synthetic_train_examples and --synthetic_test_examples must be >= 1")
    _check(not d.synthetic_shape or (
        len(d.synthetic_shape) == 3 and d.synthetic_shape[-1] in (1, 3)
        and min(d.synthetic_shape) >= 1),
           f"--synthetic_shape={','.join(map(str, d.synthetic_shape))} must be "
           "H,W,C with C in (1, 3)")
  _check(d.dataset != "npz" or bool(d.npz_path), "--dataset=npz needs --npz_path=FILE.npz")
  if d.dataset in ("mnist", "cifar10", "cifar100", "imagenet2012"):
    _check(bool(d.data_dir) or d.download,
           f"--dataset={d.dataset} reads tfds data: pass --data_dir=DIR "
           "(or --download to let tfds fetch it)")
  return config


def from_dict(values: dict) -> Config:
  """Rebuilds a Config from `Config.to_dict()` output (e.g. a run's config.json)."""
  sections = SECTIONS
  kwargs = {}
  for key, value in values.items():
    if key in sections:
      cls = sections[key]
      known = {f.name for f in dataclasses.fields(cls)}
      section = {k: v for k, v in value.items() if k in known}
      for name in ("lr_boundaries", "synthetic_shape"):
        if name in section:
          section[name] = tuple(section[name])
      if key == "train" and isinstance(section.get("jit_compile"), bool):
        # Older runs stored --jit_compile as a boolean (true: the attack).
        section["jit_compile"] = "attack" if section["jit_compile"] else "none"
      kwargs[key] = cls(**section)
    elif key in {f.name for f in dataclasses.fields(Config)}:
      kwargs[key] = value
  return Config(**kwargs)
