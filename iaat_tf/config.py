"""The typed configuration of a training run: one frozen dataclass per section.

Every field is an `options.option` (its flag, help, --help group and bounds
written once); a choice field's type is a `Literal` of the values it
accepts. Each section checks its own fields when built (`options.Section`);
the rules across fields and sections are `validation.py`'s. The command line
builds one `Config` from absl FLAGS (`cli/flags_config.py`); every library
module receives the part it needs and never reads FLAGS. Reading a run's
config.json back (older runs too) is `run_io.config_from_dict`.
"""

import dataclasses
import typing
from typing import Literal, Optional, Tuple

# ConfigError is re-exported: `from iaat_tf.config import ConfigError` is
# how the package and its users name it.
from iaat_tf.options import ConfigError as ConfigError
from iaat_tf.options import Section, document_fields, option

Dataset = Literal["digits", "mnist", "cifar10", "cifar100", "imagenet2012", "npz", "synthetic"]
# wide_resnet: the standard WRN (Zagoruyko & Komodakis); authors_wrn: the IAAT
# authors' modified WRN (authors_wrn.py), the network of the paper's numbers.
Model = Literal["small_cnn", "wide_resnet", "authors_wrn", "resnet50"]
Method = Literal["standard", "pgd_at", "iaat", "iaat_cheap"]
Strategy = Literal["default", "mirrored", "multi_worker"]
BnMode = Literal["inference", "train"]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
JitMode = Literal["none", "attack", "step"]  # What --jit_compile XLA-compiles.
CheapSignal = Literal["inference", "train_forward"]
# What clean-misclassified examples (S-) train on under iaat: "clean", their
# clean image (the paper, Algorithm 1 line 10); "adversarial", the training
# attack at the radius Algorithm 2 stored for them (0.9 p with beta 0.1), as
# the authors' code does (docs/DEPARTURES.md).
SMinusRule = Literal["clean", "adversarial"]
AugmentPad = Literal["zeros", "reflect"]  # The authors' code pads by reflection.
WeightDecayType = Literal["coupled", "decoupled"]
LrSchedule = Literal["step", "cosine", "onecycle", "cyclic"]  # training/runtime.py
Loss = Literal["ce", "trades", "mart"]  # The training loss, orthogonal to --method.
TrainAttack = Literal["pgd", "fgsm_rs"]
ExportModel = Literal["best", "last", "ema"]
EarlyStoppingWeights = Literal["raw", "ema"]  # What robust early stopping watches.
ProbeEarlyStop = Literal["none", "batch", "example"]
# --norm: the threat model of every training attack and of validation
# (attacks/norms.py); radii, gamma, eps_max and step sizes are in its units
# (the flags' defaults per norm: cli/flags_config.RADIUS_DEFAULTS).
Norm = Literal["linf", "l2"]
# Where Algorithm 2's outcomes come from (MethodConfig.probe_source): "attacks",
# two probe attacks of their own before the training attack (the algorithm);
# "training", the training attack at the stored radius and a short extension
# of it (probes.reuse_probes; docs/speed.md).
ProbeSource = Literal["attacks", "training"]
Optimizer = Literal["sgd", "adam"]
Alg2Preset = Literal["exact", "fast", "reuse"]  # docs/speed.md

# The same values as tuples, for code that lists or tests them.
DATASETS, MODELS, METHODS, STRATEGIES, BN_MODES, PRECISIONS, JIT_MODES = (
  typing.get_args(t) for t in (Dataset, Model, Method, Strategy, BnMode, Precision, JitMode)
)
CHEAP_SIGNALS, S_MINUS_RULES, AUGMENT_PADS, WEIGHT_DECAY_TYPES, LR_SCHEDULES = (
  typing.get_args(t) for t in (CheapSignal, SMinusRule, AugmentPad, WeightDecayType, LrSchedule)
)
LOSSES, TRAIN_ATTACKS, EXPORT_MODELS, EARLY_STOPPING_WEIGHTS, PROBE_EARLY_STOP = (
  typing.get_args(t) for t in (Loss, TrainAttack, ExportModel, EarlyStoppingWeights, ProbeEarlyStop)
)
NORMS, PROBE_SOURCES, OPTIMIZERS, ALG2_PRESETS = (
  typing.get_args(t) for t in (Norm, ProbeSource, Optimizer, Alg2Preset)
)
SYNTHETIC_LIKE = ("digits", "mnist", "cifar10", "cifar100", "imagenet2012")
# The methods with a per-example radius table.
ADAPTIVE_METHODS = ("iaat", "iaat_cheap")
# --train_attack=fgsm_rs: FGSM with a random start (Wong et al. 2020, "Fast is
# better than free"): a random start (L-inf: uniform in the eps cube, as
# theirs; L2: on the eps sphere, ours), one step of 1.25 eps, projected back.
# Their code attacks in train mode: --attack_bn_mode=train; ours defaults to
# inference mode.
FGSM_RS = {"steps": 1, "step_ratio": 1.25, "min_step": 0.0, "random_start": True}
FAST_METHODS = ("pgd_at", "iaat_cheap")  # What fgsm_rs trains with.


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


RUN, DATA, MODEL, METHOD, PROBES, LOSS, ATTACK, OPTIM, EVAL, EARLY = (
  "Run",
  "Data",
  "Model",
  "Method (radius schedule)",
  "Algorithm 2's probes (speed)",
  "Loss",
  "Training attack",
  "Optimisation and devices",
  "Evaluation during and after training",
  "Robust early stopping, weight average",
)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  """Where the examples come from and how they are batched."""

  dataset: Dataset = option("digits", f"One of {', '.join(DATASETS)}.", group=DATA)
  data_dir: Optional[str] = option(
    None, "tfds data directory (mnist/cifar/imagenet).", group=DATA, path=True
  )
  manual_dir: Optional[str] = option(
    None, "tfds manual_dir (ImageNet tar files).", group=DATA, path=True
  )
  npz_path: Optional[str] = option(
    None, "For --dataset=npz: file with x, y[, x_test, y_test].", group=DATA, path=True
  )
  download: bool = option(False, "Let tfds download/prepare missing data.", group=DATA)
  holdout_fraction: float = option(
    0.2, "Test fraction held out (digits, npz without a test split).", group=DATA, above=0, below=1
  )
  augment: bool = option(False, "Pad-4 random crop + horizontal flip (CIFAR-style).", group=DATA)
  augment_pad: AugmentPad = option(
    "zeros",
    "--augment's padding: zeros or reflect (the authors' code: T.Pad(4, padding_mode='reflect')).",
    group=DATA,
  )
  batch_size: int = option(128, "Global training batch size.", group=DATA, minimum=1)
  eval_batch_size: int = option(256, "Global evaluation batch size.", group=DATA, minimum=1)
  shuffle_buffer: int = option(
    0,
    "Shuffle buffer in examples; 0: auto (the whole training set, ImageNet 50,000).",
    group=DATA,
    minimum=0,
  )
  max_train_examples: int = option(
    0, "Use only the first N training examples (0: all).", group=DATA
  )
  max_eval_examples: int = option(
    0, "Use only the first N test examples (0: all).", flag="max_test_examples", group=DATA
  )
  image_size: int = option(224, "ImageNet crop size.", group=DATA)
  seed: int = option(0, "Shuffling and augmentation seed (set from --seed).", flag=None)
  num_classes: int = option(
    0, "Number of classes; 0: from the dataset (a label outside it is an error).", group=DATA
  )
  synthetic_like: str = option(
    "cifar10",
    "For --dataset=synthetic: take image shape and classes from "
    "digits, mnist, cifar10, cifar100 or imagenet2012.",
    group=DATA,
  )
  synthetic_shape: Tuple[int, ...] = option(
    (), "For --dataset=synthetic: H,W,C overriding --synthetic_like's shape.", group=DATA
  )
  synthetic_train_examples: int = option(
    1024, "For --dataset=synthetic: training examples.", group=DATA
  )
  synthetic_test_examples: int = option(256, "For --dataset=synthetic: test examples.", group=DATA)
  validation_fraction: float = option(
    0.0,
    "Hold out this fraction of the training split (fixed by example id, "
    "not --seed) for robust early stopping (0: none).",
    group=EARLY,
    minimum=0,
    below=1,
  )


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  """The classifier (models/registry.py)."""

  name: Model = option(
    "small_cnn",
    f"One of {', '.join(MODELS)} (wide_resnet: the standard WRN; "
    "authors_wrn: the IAAT authors' modified WRN, docs/DEPARTURES.md).",
    flag="model",
    group=MODEL,
  )
  depth: int = option(
    28,
    "WideResNet depth (wide_resnet: 28, 32, 34; authors_wrn: 6n+2, e.g. 32).",
    flag="wrn_depth",
    group=MODEL,
  )
  width: int = option(10, "WideResNet widening factor.", flag="wrn_width", group=MODEL, minimum=1)
  sync_batchnorm: bool = option(
    False, "Synchronise BatchNorm statistics across replicas.", group=MODEL
  )
  dropout: float = option(
    0.0, "Dropout rate (wide_resnet: inside each block; resnet50: before the logits).", group=MODEL
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
  """The training method and IAAT's radius schedule (docs/ALGORITHM.md)."""

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
  # Algorithm 2's two probe attacks (probes.fast_probes). The defaults
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


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """Optimisation, devices and run-time settings."""

  epochs: int = option(10, "Training epochs.", group=OPTIM, minimum=1)
  optimizer: Optimizer = option("sgd", "sgd or adam.", group=OPTIM)
  learning_rate: float = option(0.1, "Initial learning rate.", group=OPTIM, above=0)
  momentum: float = option(0.9, "SGD momentum.", group=OPTIM)
  weight_decay: float = option(
    5e-4, "Weight decay (0: none); see --weight_decay_type.", group=OPTIM, minimum=0
  )
  weight_decay_type: WeightDecayType = option(
    "coupled",
    "coupled: PyTorch-style L2, wd*w added to the gradient before "
    "momentum (the authors' recipe); decoupled: w -= lr*wd*w after the step (Keras' "
    "weight_decay; with adam this is AdamW).",
    group=OPTIM,
  )
  lr_boundaries: Tuple[int, ...] = option(
    (), "Epochs at which lr *= lr_decay, e.g. 70,90,100.", group=OPTIM
  )
  lr_decay: float = option(0.2, "Learning-rate factor at each boundary.", group=OPTIM)
  lr_warmup_epochs: int = option(
    0,
    "Linear learning-rate warmup (Goyal et al. 2017, large-batch ImageNet): step "
    "s of the first N epochs trains at --lr_schedule's rate x (s + 1) / (N x steps "
    "per epoch) (0: none).",
    group=OPTIM,
    minimum=0,
  )
  lr_schedule: LrSchedule = option(
    "step",
    "step (x --lr_decay at each --lr_boundaries epoch; constant without "
    "them), cosine (per step from --learning_rate to 0 over the run), onecycle "
    "(fast_adversarial's MNIST cycle: linear 0 -> --learning_rate at 2/5 of the "
    "epochs -> 0) or cyclic (their CIFAR cycle, PyTorch's CyclicLR: 0 -> "
    "--learning_rate at half the steps -> 0, SGD momentum cycled --momentum -> 0.8 "
    "-> --momentum).",
    group=OPTIM,
  )
  ema_decay: float = option(
    0.0,
    "Keep an exponential moving average of the weights with this decay (e.g. "
    "0.999; 0: off), evaluated each validated epoch beside the raw weights "
    "(val_ema_*).",
    group=EARLY,
    minimum=0,
    below=1,
  )
  strategy: Strategy = option("default", f"One of {', '.join(STRATEGIES)}.", group=OPTIM)
  num_virtual_devices: int = option(
    0, "Split the CPU into N logical devices (testing mirrored).", group=OPTIM, minimum=0
  )
  gpu_memory_growth: bool = option(
    True,
    "GPU memory as needed (TensorFlow's TF_FORCE_GPU_ALLOW_GROWTH), so runs "
    "can share a GPU; --nogpu_memory_growth: TensorFlow's default, all of each "
    "visible GPU at start. An exported TF_FORCE_GPU_ALLOW_GROWTH wins.",
    group=OPTIM,
  )
  precision: Precision = option("float32", f"One of {', '.join(PRECISIONS)}.", group=OPTIM)
  jit_compile: JitMode = option(
    "none",
    "XLA: none, attack (the PGD function), or step (the whole train step; "
    "--strategy=default only).",
    group=ATTACK,
  )
  steps_per_execution: int = option(1, "Train steps per tf.function call.", group=OPTIM, minimum=1)
  keep_checkpoints: int = option(3, "Checkpoints kept.", group=OPTIM)
  verbose: int = option(
    1,
    "0: silent; 1: a summary line per epoch (plus Keras' progress bar on a "
    "terminal); 2: Keras' line with every metric.",
    group=RUN,
  )


@dataclasses.dataclass(frozen=True)
class ValidationConfig(Section):
  """The PGD validation during training and the final test."""

  eps: float = option(
    8.0 / 255, "Radius of the PGD validation.", flag="eval_eps", group=EVAL, radius=True
  )
  steps: int = option(10, "PGD steps in evaluation.", flag="eval_pgd_steps", group=EVAL, minimum=1)
  step_size: float = option(
    2.0 / 255, "PGD step size in validation.", flag="eval_step_size", group=EVAL, radius=True
  )
  every_epochs: int = option(1, "Validate every N epochs.", flag="eval_every_epochs", group=EVAL)
  max_examples: int = option(
    1000, "Test examples in the per-epoch validation.", flag="val_examples", group=EVAL
  )


@dataclasses.dataclass(frozen=True)
class Config(Section):
  """One training run: where it writes, and every section's settings."""

  output_dir: str = option(
    None, "Directory for checkpoints, SavedModel, results.", group=RUN, path=True
  )
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  attack: AttackConfig = AttackConfig()
  method: MethodConfig = MethodConfig()
  train: TrainConfig = TrainConfig()
  validation: ValidationConfig = ValidationConfig()
  seed: int = option(0, "Global seed (weights, shuffling, attack noise).", group=RUN)
  export: bool = option(True, "Export the classifier as a SavedModel at the end.", group=RUN)
  overwrite: bool = option(
    False,
    "Delete what --output_dir holds and train from scratch (default: resume "
    "an unfinished run; leave a finished one untouched).",
    group=RUN,
  )
  export_model: ExportModel = option(
    "best",
    "Weights to export (and test): best (with --validation_fraction: the "
    "best-validation epoch's; else the last), last (the final weights) or ema (the "
    "final weight average, --ema_decay).",
    group=EARLY,
  )
  early_stopping_weights: EarlyStoppingWeights = option(
    "raw",
    "With --validation_fraction: the weights whose validation PGD accuracy "
    "picks the best epoch, raw or ema (the weight average; it is then what is saved "
    "as best).",
    group=EARLY,
  )

  def to_dict(self):
    return dataclasses.asdict(self)


SECTIONS = {
  "data": DataConfig,
  "model": ModelConfig,
  "attack": AttackConfig,
  "method": MethodConfig,
  "train": TrainConfig,
  "validation": ValidationConfig,
}


for _cls in (Config, *SECTIONS.values()):
  document_fields(_cls)
