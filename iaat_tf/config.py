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
# --alg2_preset (docs/speed.md, bench/ALG2_FIDELITY.md).
ALG2_PRESETS = ("exact", "fast")


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
  uses. Measured in bench/ALG2_FIDELITY.md and bench/RESULTS_ALG2.md.
  """
  if name not in ALG2_PRESETS:
    raise ConfigError(f"unknown --alg2_preset={name!r}; choose one of "
                      f"{', '.join(ALG2_PRESETS)}")
  if name == "exact":
    return {}
  steps = probe_steps or max(1, round(attack_steps / 3))
  return {"probe_steps": steps,
          "probe_step_ratio": attack_step_ratio * attack_steps / steps,
          "probe_early_stop": "example", "probe_only_needed": True}


@dataclasses.dataclass(frozen=True)
class DataConfig:
  dataset: str = "digits"
  data_dir: Optional[str] = None
  manual_dir: Optional[str] = None  # ImageNet's downloaded tar files.
  npz_path: Optional[str] = None
  download: bool = False
  holdout_fraction: float = 0.2
  augment: bool = False
  augment_pad: str = "zeros"  # zeros | reflect (AUGMENT_PADS).
  batch_size: int = 128
  eval_batch_size: int = 256
  shuffle_buffer: int = 0  # 0: auto (whole training set; ImageNet 50k JPEGs)
  max_train_examples: int = 0  # 0: all
  max_eval_examples: int = 0  # --max_test_examples; 0: all
  image_size: int = 224  # ImageNet only.
  seed: int = 0
  num_classes: int = 0  # 0: from the dataset (tfds info, npz, digits).
  synthetic_like: str = "cifar10"  # Shape and classes of --dataset=synthetic.
  synthetic_shape: Tuple[int, ...] = ()  # () : from synthetic_like.
  synthetic_train_examples: int = 1024
  synthetic_test_examples: int = 256
  # Held out of the training split for early stopping (0: none).
  validation_fraction: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  name: str = "small_cnn"
  depth: int = 28
  width: int = 10
  sync_batchnorm: bool = False
  dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """PGD used during training (k steps, step = max(eps * ratio, min_step)).

  `step_ratio` 0 (the default) ties the step to k as the authors' code does:
  ratio = 2 / k, i.e. step = max(eps / (0.5 k), min_step) (0.2 at k = 10).
  """
  steps: int = 10
  step_ratio: float = 0.0
  min_step: float = 2.0 / 255
  random_start: bool = True
  bn_mode: str = "inference"  # BatchNorm mode while attacking.
  jit_compile: bool = False  # XLA on the attack function alone.
  name: str = "pgd"  # TRAIN_ATTACKS; "fgsm_rs" is PGD with the FGSM_RS values.
  norm: str = "linf"  # NORMS: the training attacks' and validation's ball.

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
class MethodConfig:
  """The training method and IAAT's radius schedule (docs/ALGORITHM.md)."""
  method: str = "iaat"
  eps: float = 8.0 / 255  # PGD-AT radius; IAAT's warmup radius eps_w.
  warmup_epochs: int = 10
  gamma: float = 1.9 / 255
  beta: float = 0.1  # Weight of the newly selected radius in the EMA.
  eps_max: float = 1.0
  # iaat_cheap: smoothing weight of the new radius (0: none, the paper's rule)
  # and where the attack's outcome is read: an inference-mode forward pass on
  # the adversarial batch (like Algorithm 2), or the training forward pass.
  cheap_beta: float = 0.0
  cheap_signal: str = "inference"
  # iaat: what S- examples train on (S_MINUS_RULES): the paper's clean image,
  # or the authors' code's adversarial example at their stored radius.
  s_minus: str = "clean"
  # The training loss (losses.py) and its weights; the radius rules above
  # are unchanged by it.
  loss: str = "ce"
  trades_beta: float = 6.0
  mart_beta: float = 6.0
  # Linear ramp of the training radius from 0 to eps over these epochs (per
  # step), for pgd_at and the IAAT warmup (0: none).
  eps_ramp_epochs: int = 0
  # Algorithm 2's two probe attacks (batch_steps.fast_probes). The defaults
  # are the exact algorithm: both probes are the training attack.
  probe_steps: int = 0  # PGD steps of each probe (0: the attack's k).
  probe_step_ratio: float = 0.0  # Probe step = eps * ratio (0: the attack's).
  probe_batched: bool = False  # Both probes as one call on a doubled batch.
  probe_early_stop: str = "none"  # none | batch | example (PROBE_EARLY_STOP).
  probe_only_needed: bool = False  # Probe only examples whose result is used.


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  epochs: int = 10
  optimizer: str = "sgd"
  learning_rate: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 5e-4
  # coupled: PyTorch's L2 (wd * w added to the gradient before momentum, the
  # authors' recipe); decoupled: Keras' / AdamW's (w -= lr * wd * w).
  weight_decay_type: str = "coupled"
  lr_boundaries: Tuple[int, ...] = ()  # epochs at which lr *= lr_decay
  lr_decay: float = 0.2
  lr_schedule: str = "step"  # LR_SCHEDULES
  ema_decay: float = 0.0  # Weight average (weight_average.py); 0: off.
  strategy: str = "default"
  num_virtual_devices: int = 0  # >0: split the CPU into N devices (tests).
  precision: str = "float32"
  # XLA: "none", "attack" (the PGD function), "step" (the whole train step;
  # default strategy only).
  jit_compile: str = "none"
  steps_per_execution: int = 1
  keep_checkpoints: int = 3
  verbose: int = 2


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  eps: float = 8.0 / 255
  steps: int = 10
  step_size: float = 2.0 / 255
  every_epochs: int = 1
  max_examples: int = 1000  # --val_examples: per-epoch PGD validation subset.


@dataclasses.dataclass(frozen=True)
class Config:
  output_dir: str
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  attack: AttackConfig = AttackConfig()
  method: MethodConfig = MethodConfig()
  train: TrainConfig = TrainConfig()
  eval: EvalConfig = EvalConfig()
  seed: int = 0
  export: bool = True
  overwrite: bool = False  # Start over in a non-empty output_dir.
  export_model: str = "best"  # EXPORT_MODELS
  early_stopping_weights: str = "raw"  # EARLY_STOPPING_WEIGHTS

  def to_dict(self):
    return dataclasses.asdict(self)


def parse_radius(name: str, text: str) -> float:
  """'8/255' or '0.03' -> float; ConfigError naming the flag otherwise."""
  try:
    if "/" in str(text):
      num, den = str(text).split("/")
      return float(num) / float(den)
    return float(text)
  except (ValueError, ZeroDivisionError):
    raise ConfigError(f"--{name}={text!r} is not a number or fraction like 8/255") from None


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


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


def validate(config: Config) -> Config:
  """Raises ConfigError with a one-line message for any bad setting."""
  d, m, a, me, t, e = (config.data, config.model, config.attack,
                       config.method, config.train, config.eval)
  _check(bool(config.output_dir), "--output_dir is required")
  for flag, value, choices in (
      ("dataset", d.dataset, DATASETS), ("model", m.name, MODELS),
      ("method", me.method, METHODS), ("strategy", t.strategy, STRATEGIES),
      ("attack_bn_mode", a.bn_mode, BN_MODES),
      ("precision", t.precision, PRECISIONS),
      ("jit_compile", t.jit_compile, JIT_MODES),
      ("cheap_signal", me.cheap_signal, CHEAP_SIGNALS),
      ("s_minus", me.s_minus, S_MINUS_RULES),
      ("augment_pad", d.augment_pad, AUGMENT_PADS),
      ("loss", me.loss, LOSSES), ("export_model", config.export_model, EXPORT_MODELS),
      ("train_attack", a.name, TRAIN_ATTACKS),
      ("early_stopping_weights", config.early_stopping_weights,
       EARLY_STOPPING_WEIGHTS),
      ("probe_early_stop", me.probe_early_stop, PROBE_EARLY_STOP),
      ("optimizer", t.optimizer, ("sgd", "adam")),
      ("weight_decay_type", t.weight_decay_type, WEIGHT_DECAY_TYPES),
      ("lr_schedule", t.lr_schedule, LR_SCHEDULES), ("norm", a.norm, NORMS)):
    _check(value in choices,
           f"unknown --{flag}={value!r}; choose one of {', '.join(choices)}")
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
  for name, value in (("warmup_epochs", me.warmup_epochs), ("trades_beta", me.trades_beta),
                      ("mart_beta", me.mart_beta), ("eps_ramp_epochs", me.eps_ramp_epochs),
                      ("num_virtual_devices", t.num_virtual_devices),
                      ("shuffle_buffer", d.shuffle_buffer), ("probe_steps", me.probe_steps),
                      ("probe_step_ratio", me.probe_step_ratio),
                      ("pgd_step_ratio", a.step_ratio), ("weight_decay", t.weight_decay)):
    _check(value >= 0, f"--{name}={value} must be >= 0")
  _check(not (me.method in ("iaat", "iaat_cheap") and
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
  for name, value in (("epochs", t.epochs), ("pgd_steps", a.steps),
                      ("eval_pgd_steps", e.steps), ("batch_size", d.batch_size),
                      ("eval_batch_size", d.eval_batch_size),
                      ("steps_per_execution", t.steps_per_execution),
                      ("wrn_width", m.width)):
    _check(value >= 1, f"--{name}={value} must be >= 1")
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
  sections = {"data": DataConfig, "model": ModelConfig, "attack": AttackConfig,
              "method": MethodConfig, "train": TrainConfig, "eval": EvalConfig}
  kwargs = {}
  for key, value in values.items():
    if key in sections:
      cls = sections[key]
      known = {f.name for f in dataclasses.fields(cls)}
      section = {k: v for k, v in value.items() if k in known}
      for name in ("lr_boundaries", "synthetic_shape"):
        if name in section:
          section[name] = tuple(section[name])
      kwargs[key] = cls(**section)
    elif key in {f.name for f in dataclasses.fields(Config)}:
      kwargs[key] = value
  return Config(**kwargs)
