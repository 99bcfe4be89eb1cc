"""The evaluation job's options: `EvaluationConfig`, and every check it needs before TensorFlow.

Every option of `iaat-evaluate` is an `options.option` field of
`EvaluationConfig` (AutoAttack's are the shared `AutoAttackOptions`,
evaluation/settings.py); the command line generates its flags from them
(cli/evaluate.py). `check(options)` checks an evaluation once, without
TensorFlow (a one-line `EvaluationError` or `ConfigError`): exactly one of
a run directory or a foreign model; for a run, its config.json, the radii
in its threat model, the weights --source names and its data (`check_run`);
for a foreign model, its file, dataset, data and input convention.
`autoattack_options` says which AutoAttack an evaluation runs (also for the
frontier's cache). Not to be confused with the training run's validation
(`config.ValidationConfig`: PGD during training).
"""

import dataclasses
import os
from typing import Literal, Optional, Tuple

from iaat_tf import config as cfg
from iaat_tf import run_io
from iaat_tf.evaluation import model_files
from iaat_tf.evaluation.settings import AUTOATTACK, AutoAttackOptions
from iaat_tf.options import ConfigError, Section, document_fields, option
from iaat_tf.validation import TFDS_DATASETS

RUN, FOREIGN, ATTACKS, EXAMPLES, DEVICES, CORRUPTIONS = (
  "Run",
  "A model not trained here",
  "Attacks",
  "Examples",
  "Devices",
  "CIFAR-10-C",
)
HELP_GROUP_ORDER = (RUN, FOREIGN, ATTACKS, AUTOATTACK, EXAMPLES, DEVICES, CORRUPTIONS, "Output")
# The test splits a model not trained here can be attacked on.
FOREIGN_DATASETS = tuple(d for d in cfg.DATASETS if d != "synthetic")
IMAGENET_AA_EXAMPLES = 5000  # RobustBench: the first 5,000 validation images.
FOREIGN_BATCH_SIZE = 256  # A foreign model's evaluation batch (no run to take it from).
CIFAR10_C_CORRUPTIONS = tuple(
  "brightness contrast defocus_blur elastic fog frost frosted_glass_blur gaussian_blur "
  "gaussian_noise impulse_noise jpeg_compression motion_blur pixelate saturate shot_noise "
  "snow spatter speckle_noise zoom_blur".split()
)


class EvaluationError(ValueError):
  """A user-facing problem with the run directory or options; one line."""


@dataclasses.dataclass(frozen=True)
class EvaluationConfig(Section):
  """What `iaat_tf.evaluate` measures, on a training run or a foreign model."""

  run_dir: Optional[str] = option(None, "A training run's --output_dir.", group=RUN, path=True)
  source: Literal["saved_model", "checkpoint"] = option(
    "saved_model", "Evaluate the exported SavedModel or the latest checkpoint.", group=RUN
  )
  out_dir: Optional[str] = option(
    None, "Output directory (default RUN_DIR/eval).", group=RUN, path=True
  )
  data_dir: Optional[str] = option(
    None, "Override the run's tfds --data_dir.", group=RUN, path=True
  )
  # A model this package did not train (evaluation/foreign.py): AutoAttack on
  # `dataset`'s test split.
  saved_model: Optional[str] = option(
    None,
    "Evaluate this SavedModel (any model: model.export(), tf.saved_model.save) instead of a run.",
    group=FOREIGN,
    path=True,
  )
  keras_model: Optional[str] = option(
    None, "Evaluate this .keras file instead of a run.", group=FOREIGN, path=True
  )
  signature: Optional[str] = option(
    None,
    "The SavedModel's signature (default: its `serve` endpoint, else serving_default).",
    group=FOREIGN,
  )
  dataset: Optional[str] = option(
    None,
    "With --saved_model/--keras_model: the test split to attack ("
    + ", ".join(FOREIGN_DATASETS)
    + ").",
    group=FOREIGN,
  )
  npz_path: Optional[str] = option(
    None, "With --dataset=npz: the .npz file.", group=FOREIGN, path=True
  )
  image_size: int = option(
    224, "With --dataset=imagenet2012: the crop size.", group=FOREIGN, minimum=1
  )
  input_range: Tuple[float, ...] = option(
    (0.0, 1.0),
    "The pixel range the model takes, e.g. 0,255 (images are attacked in [0, 1]).",
    group=FOREIGN,
  )
  input_mean: Optional[Tuple[float, ...]] = option(
    None,
    "Per-channel mean the model expects subtracted (in --input_range units), "
    "e.g. 0.4914,0.4822,0.4465.",
    group=FOREIGN,
  )
  input_std: Optional[Tuple[float, ...]] = option(
    None, "Per-channel std the model expects divided by, after the mean.", group=FOREIGN
  )
  allow_chance: bool = option(
    False,
    "Go on with AutoAttack when the model's clean accuracy is at chance (by default "
    "that stops with exit 2: the model most likely expects other inputs).",
    group=FOREIGN,
  )
  attacks: Tuple[Literal["autoattack", "suite"], ...] = option(
    ("autoattack", "suite"),
    "autoattack (AutoAttack standard: APGD-CE, APGD-T, "
    "FAB-T, Square at the run's eval eps) and/or suite (PGD/APGD curve).",
    group=ATTACKS,
  )
  norm: Optional[cfg.Norm] = option(
    None,
    "Threat model of both evaluations (default: the run's --norm; another "
    "norm needs --aa_eps and --eps_list in its units).",
    group=ATTACKS,
  )
  eps_list: Tuple[float, ...] = option(
    (),
    "Radii, e.g. 0,2/255,4/255,8/255 (default: 0, eval_eps/2, eval_eps, 2*eval_eps).",
    group=ATTACKS,
  )
  pgd_steps: int = option(20, "PGD steps.", group=ATTACKS, minimum=1)
  restarts: int = option(1, "PGD random restarts.", group=ATTACKS, minimum=1)
  losses: Tuple[Literal["ce", "margin"], ...] = option(
    ("ce", "margin"), "PGD losses (ce, margin).", group=ATTACKS
  )
  apgd: bool = option(True, "Also run APGD-CE and APGD-DLR.", group=ATTACKS)
  apgd_iters: int = option(100, "APGD iterations of the suite.", group=ATTACKS, minimum=1)
  jit_compile: bool = option(False, "XLA-compile the attacks.", group=ATTACKS)
  max_examples: int = option(
    1000,
    "Test examples of the robustness suite (0: all; AutoAttack's: --aa_max_examples).",
    flag="num_examples",
    group=EXAMPLES,
    minimum=0,
  )
  batch_size: int = option(0, "Batch size (0: the run's).", group=EXAMPLES, minimum=0)
  strategy: Literal["default", "mirrored"] = option(
    "default", "mirrored: spread attack batches over the local GPUs.", group=DEVICES
  )
  gpu_memory_growth: bool = option(
    True,
    "GPU memory as needed (TensorFlow's TF_FORCE_GPU_ALLOW_GROWTH), so runs "
    "can share a GPU; --nogpu_memory_growth: TensorFlow's default, all of each "
    "visible GPU at start. An exported TF_FORCE_GPU_ALLOW_GROWTH wins.",
    group=DEVICES,
  )
  num_virtual_devices: int = option(
    0, "Split the CPU into this many devices (tests).", group=DEVICES, minimum=0
  )
  corruptions: Tuple[str, ...] = option((), "CIFAR-10-C corruptions, or 'all'.", group=CORRUPTIONS)
  severities: Tuple[int, ...] = option((1, 2, 3, 4, 5), "CIFAR-10-C severities.", group=CORRUPTIONS)
  autoattack: AutoAttackOptions = AutoAttackOptions()

  def __post_init__(self):
    super().__post_init__()
    for eps in self.eps_list:
      if not 0.0 <= eps < float("inf"):
        raise ConfigError(f"eps {eps} in --eps_list must be finite and >= 0")
    if not self.attacks:
      raise ConfigError("--attacks must name suite and/or autoattack, got (none)")
    unknown = sorted(set(self.corruptions) - set(CIFAR10_C_CORRUPTIONS) - {"all"})
    if unknown:
      raise ConfigError(
        f"unknown CIFAR-10-C corruption(s) {unknown}; choose from "
        f"{', '.join(CIFAR10_C_CORRUPTIONS)}, or all"
      )

  @property
  def foreign(self) -> bool:
    """A model this package did not train (--saved_model / --keras_model)."""
    return bool(self.saved_model or self.keras_model)

  @property
  def foreign_out_dir(self) -> str:
    """Where a foreign model's results go: --out_dir, else eval_<model name>
    (a .keras file's name without its extension)."""
    name = os.path.basename(os.path.normpath(self.saved_model or self.keras_model or ""))
    return self.out_dir or f"eval_{name[: -len('.keras')] if self.keras_model else name}"


document_fields(EvaluationConfig)
# Flags that only mean something for a training run (the robustness suite,
# the run's checkpoint, CIFAR-10-C): refused with a model not trained here.
RUN_ONLY = tuple(
  "source eps_list pgd_steps restarts losses apgd apgd_iters num_examples corruptions "
  "severities".split()
)


def threat_model(options: EvaluationConfig, run_norm: cfg.Norm, run_eps: float) -> cfg.Norm:
  """The norm of an evaluation, or EvaluationError (`run_eps`: for the message).

  The norm is --norm, else the run's. Another norm than the run's has no
  default radius (the run's is in other units): --aa_eps and --eps_list
  must then say which radii to attack at.
  """
  norm = options.norm or run_norm
  aa_eps = options.autoattack.eps
  if norm != run_norm and (
    ("autoattack" in options.attacks and aa_eps is None)
    or ("suite" in options.attacks and not options.eps_list)
  ):
    raise EvaluationError(
      f"--norm={norm} differs from the run's {run_norm}, whose radius "
      f"{run_eps:.4g} is in {run_norm} units: pass --aa_eps and --eps_list in "
      f"{norm} units (e.g. 0.5 for l2, 8/255 for linf)"
    )
  radii = list(options.eps_list) + ([aa_eps] if aa_eps is not None else [])
  for eps in radii:
    if norm == "linf" and not 0.0 <= eps <= 1.0:
      raise EvaluationError(
        f"radius {eps} is outside [0, 1] (L-inf on [0, 1] images; L2 radii need --norm=l2)"
      )
  return norm


def autoattack_options(
  options: EvaluationConfig, run: Optional[cfg.Config] = None
) -> AutoAttackOptions:
  """The AutoAttack an evaluation runs: the --aa_* options, with what the
  command decides from its other flags and the run (None: a model not
  trained here): the threat model (`threat_model`), the radius (--aa_eps,
  else the run's --eval_eps), the examples (--aa_max_examples, else
  RobustBench's 5,000 for imagenet2012, else all: 0), the batch size, the
  seed (the run's; 0) and --jit_compile. EvaluationError for a radius in
  the wrong units; no TensorFlow."""
  aa = dataclasses.replace(options, attacks=("autoattack",))
  if run is None:
    norm = threat_model(aa, options.norm or "linf", options.autoattack.eps or 0.0)
    eps, seed, dataset, batch = options.autoattack.eps, 0, options.dataset, FOREIGN_BATCH_SIZE
  else:
    norm = threat_model(aa, run.attack.norm, run.validation.eps)
    eps = run.validation.eps if options.autoattack.eps is None else options.autoattack.eps
    seed, dataset, batch = run.seed, run.data.dataset, run.data.eval_batch_size
  limit = options.autoattack.max_examples
  if limit is None:  # RobustBench's ImageNet subset size; all of a small split.
    limit = IMAGENET_AA_EXAMPLES if dataset == "imagenet2012" else 0
  return dataclasses.replace(
    options.autoattack,
    norm=norm,
    eps=eps,
    max_examples=limit,
    batch_size=options.autoattack.batch_size or options.batch_size or batch,
    seed=seed,
    jit_compile=options.jit_compile,
  )


def check_run(options: EvaluationConfig, run: cfg.Config, run_dir: str) -> None:
  """What a run's evaluation needs from its flags, config.json and file
  names (EvaluationError, one line): radii in the threat model's units, the
  weights --source names, the data folder."""
  if "suite" in options.attacks:
    threat_model(
      dataclasses.replace(options, attacks=("suite",)), run.attack.norm, run.validation.eps
    )
  if "autoattack" in options.attacks:
    autoattack_options(options, run)
  if options.source == "saved_model" and not os.path.isdir(os.path.join(run_dir, "saved_model")):
    raise EvaluationError(
      f"{run_dir}: no saved_model/ (train with --export, or use --source=checkpoint)"
    )
  if options.source == "checkpoint" and not os.path.isfile(
    os.path.join(run_dir, "checkpoints", "checkpoint")
  ):
    raise EvaluationError(f"{run_dir}: no checkpoint in {run_dir}/checkpoints")
  data_dir = options.data_dir or run.data.data_dir
  if run.data.dataset in TFDS_DATASETS and data_dir and not os.path.isdir(data_dir):
    raise EvaluationError(f"--data_dir={data_dir} does not exist (the run's tfds data folder)")
  if run.data.dataset == "npz" and not os.path.isfile(run.data.npz_path or ""):
    raise EvaluationError(f"{run_dir}: its --npz_path={run.data.npz_path} does not exist")


def load_run_config(run_dir: str) -> cfg.Config:
  """A run directory's config.json as a Config (EvaluationError if unreadable)."""
  try:
    return run_io.config_from_dict(run_io.read_config_dict(run_dir))
  except run_io.RunDirError as e:
    raise EvaluationError(str(e)) from None


def check(options: EvaluationConfig) -> EvaluationConfig:
  """The evaluation, checked once without TensorFlow, as it will run: a
  foreign model's gets `attacks=("autoattack",)` and its output folder."""
  sources = [n for n in ("run_dir", "saved_model", "keras_model") if getattr(options, n)]
  if len(sources) != 1:
    raise EvaluationError(
      "give exactly one of --run_dir (a training run), "
      "--saved_model=DIR or --keras_model=FILE.keras, got "
      + (", ".join(f"--{n}" for n in sources) or "none")
    )
  if not options.foreign:
    if options.allow_chance:
      raise EvaluationError("--allow_chance applies to --saved_model/--keras_model only")
    run_dir = options.run_dir or ""
    check_run(options, load_run_config(run_dir), run_dir)
    return options
  _check_foreign(options)
  return dataclasses.replace(options, attacks=("autoattack",), out_dir=options.foreign_out_dir)


def _check_foreign(options: EvaluationConfig) -> None:
  """What a model this package did not train needs (and refuses)."""
  path = options.saved_model or options.keras_model or ""
  flag = "saved_model" if options.saved_model else "keras_model"
  bad = model_files.problem(flag, path)
  if bad:
    raise EvaluationError(bad)
  if options.dataset not in FOREIGN_DATASETS:
    raise EvaluationError(
      f"--{flag} needs --dataset, one of {', '.join(FOREIGN_DATASETS)}"
      + (f" (got {options.dataset!r})" if options.dataset else "")
    )
  if options.dataset == "npz" and not os.path.isfile(options.npz_path or ""):
    raise EvaluationError(
      f"--npz_path={options.npz_path} does not exist"
      if options.npz_path
      else "--dataset=npz needs --npz_path=FILE.npz"
    )
  if options.dataset in TFDS_DATASETS and not options.data_dir:
    raise EvaluationError(f"--dataset={options.dataset} reads tfds data: pass --data_dir=DIR")
  if options.data_dir and not os.path.isdir(options.data_dir):
    raise EvaluationError(
      f"--data_dir={options.data_dir} does not exist (pass the directory holding the tfds data)"
    )
  low, high = options.input_range if len(options.input_range) == 2 else (0, 0)
  if not high > low:
    raise EvaluationError(
      f"--input_range={','.join(f'{v:g}' for v in options.input_range)} must be two "
      "numbers, low < high (e.g. 0,255)"
    )
  if options.input_std and min(options.input_std) <= 0:
    raise EvaluationError("--input_std values must be > 0")
  if options.autoattack.eps is None:
    raise EvaluationError(
      f"--{flag} needs --aa_eps (there is no run to take the radius from), e.g. --aa_eps=8/255"
    )
  autoattack_options(options)  # The radius in the threat model's units.
