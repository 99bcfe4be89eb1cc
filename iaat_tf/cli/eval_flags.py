"""The evaluation command's options: `EvalOptions`, built from its flags in one place.

`iaat_tf.evaluate` defines its flags here (`define_flags`), checks them
without TensorFlow (`options_from_flags`: bad values raise `EvaluationError`,
shown as one line) and passes the typed options to the library.
"""

import dataclasses
from typing import Optional, Sequence

from iaat_tf import config as cfg


class EvaluationError(ValueError):
  """A user-facing problem with the run directory or options; one line."""


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  source: str = "saved_model"  # or "checkpoint"
  eps_list: Sequence[float] = ()  # empty: 0, eval_eps/2, eval_eps, 2*eval_eps
  pgd_steps: int = 20
  restarts: int = 1
  losses: Sequence[str] = ("ce", "margin")
  apgd: bool = True
  apgd_iters: int = 100
  max_examples: int = 1000  # 0: the whole test split
  batch_size: int = 0  # 0: the run's eval batch size
  data_dir: Optional[str] = None  # overrides the run's
  corruptions: Sequence[str] = ()  # CIFAR-10-C corruption names, or ("all",)
  severities: Sequence[int] = (1, 2, 3, 4, 5)
  out_dir: Optional[str] = None
  jit_compile: bool = False
  # AutoAttack (see `autoattack_run`); the CLI runs it by default.
  attacks: Sequence[str] = ("suite",)  # "suite" and/or "autoattack"
  aa_eps: Optional[float] = None  # None: the run's eval eps
  aa_max_examples: Optional[int] = None  # 0: all; None: 5,000 on ImageNet, else all
  aa_apgd_iters: int = 100
  aa_targets: int = 9
  aa_fab_iters: int = 100
  aa_square_queries: int = 5000
  aa_batch_size: int = 0  # 0: --batch_size, else the run's eval batch size
  strategy: str = "default"  # or "mirrored": attack batches spread over devices
  num_virtual_devices: int = 0  # Split the CPU (tests)
  norm: Optional[str] = None  # "linf" or "l2"; None: the run's --norm
  # A model this package did not train (instead of a run directory):
  # evaluation/foreign.py. AutoAttack on `dataset`'s test split.
  saved_model: Optional[str] = None
  keras_model: Optional[str] = None
  signature: Optional[str] = None  # None: `serve`, else serving_default.
  dataset: Optional[str] = None
  npz_path: Optional[str] = None
  image_size: int = 224  # ImageNet only.
  input_range: Sequence[float] = (0.0, 1.0)  # What the model takes.
  input_mean: Optional[Sequence[float]] = None  # Subtracted after the range.
  input_std: Optional[Sequence[float]] = None  # Divided after the mean.

  @property
  def foreign(self) -> bool:
    """A model this package did not train (--saved_model / --keras_model)."""
    return bool(self.saved_model or self.keras_model)


def threat_model(options: EvalOptions, run_norm: str, run_eps: float) -> str:
  """The norm of an evaluation, or EvaluationError (`run_eps`: for the message).

  The norm is --norm, else the run's. Another norm than the run's has no
  default radius (the run's is in other units): --aa_eps and --eps_list
  must then say which radii to attack at.
  """
  norm = options.norm or run_norm
  if norm != run_norm and (
      ("autoattack" in options.attacks and options.aa_eps is None) or
      ("suite" in options.attacks and not options.eps_list)):
    raise EvaluationError(
        f"--norm={norm} differs from the run's {run_norm}, whose radius "
        f"{run_eps:.4g} is in {run_norm} units: pass --aa_eps and --eps_list in "
        f"{norm} units (e.g. 0.5 for l2, 8/255 for linf)")
  radii = list(options.eps_list) + ([options.aa_eps] if options.aa_eps is not None else [])
  for eps in radii:
    if norm == "linf" and not 0.0 <= eps <= 1.0:
      raise EvaluationError(f"radius {eps} is outside [0, 1] (L-inf on [0, 1] "
                            "images; L2 radii need --norm=l2)")
  return norm


SUMMARY = """\
Measures the robustness of a finished training run: clean accuracy and
PGD / APGD accuracy at every radius, with the per-example worst case. Writes
RUN_DIR/eval/ (or --out_dir) and adds the curve to RUN_DIR/results.json.
Any other TensorFlow classifier (--saved_model=DIR or --keras_model=FILE.keras,
with --dataset): AutoAttack at --aa_eps, written to --out_dir."""
# Flags that only mean something for a training run (the robustness suite,
# the run's checkpoint, CIFAR-10-C): refused with a model not trained here.
RUN_ONLY = ("source", "eps_list", "pgd_steps", "restarts", "losses", "apgd",
            "apgd_iters", "num_examples", "corruptions", "severities")
HELP_GROUPS = (
    ("Run", ("run_dir", "source", "out_dir", "data_dir")),
    ("A model not trained here", ("saved_model", "keras_model", "signature",
                                  "dataset", "npz_path", "image_size",
                                  "input_range", "input_mean", "input_std")),
    ("Attacks", ("attacks", "norm", "eps_list", "pgd_steps", "restarts", "losses",
                 "apgd", "apgd_iters", "jit_compile")),
    ("AutoAttack", ("aa_eps", "aa_max_examples", "aa_apgd_iters", "aa_targets",
                    "aa_fab_iters", "aa_square_queries", "aa_batch_size")),
    ("Examples", ("num_examples", "batch_size")),
    ("Devices", ("strategy", "num_virtual_devices")),
    ("CIFAR-10-C", ("corruptions", "severities")),
    ("Output", ("debug",)),
)


def define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("run_dir", None, "A training run's --output_dir.")
  flags.DEFINE_enum("source", "saved_model", ["saved_model", "checkpoint"],
                    "Evaluate the exported SavedModel or the latest checkpoint.")
  flags.DEFINE_enum("norm", None, list(cfg.NORMS), "Threat model of both "
                    "evaluations (default: the run's --norm; another norm needs "
                    "--aa_eps and --eps_list in its units).")
  flags.DEFINE_list("eps_list", [], "Radii, e.g. 0,2/255,4/255,8/255 (default: "
                    "0, eval_eps/2, eval_eps, 2*eval_eps).")
  flags.DEFINE_integer("pgd_steps", 20, "PGD steps.")
  flags.DEFINE_integer("restarts", 1, "PGD random restarts.")
  flags.DEFINE_list("losses", ["ce", "margin"], "PGD losses (ce, margin).")
  flags.DEFINE_bool("apgd", True, "Also run APGD-CE and APGD-DLR.")
  flags.DEFINE_integer("apgd_iters", 100, "APGD iterations.")
  flags.DEFINE_integer("num_examples", 1000, "Test examples of the robustness suite "
                       "(0: all; AutoAttack's: --aa_max_examples).")
  flags.DEFINE_integer("batch_size", 0, "Batch size (0: the run's).")
  flags.DEFINE_string("data_dir", None, "Override the run's tfds --data_dir.")
  flags.DEFINE_list("corruptions", [], "CIFAR-10-C corruptions, or 'all'.")
  flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "CIFAR-10-C severities.")
  flags.DEFINE_string("out_dir", None, "Output directory (default RUN_DIR/eval).")
  flags.DEFINE_bool("jit_compile", False, "XLA-compile the attacks.")
  flags.DEFINE_list("attacks", ["autoattack", "suite"],
                    "autoattack (AutoAttack standard: APGD-CE, APGD-T, FAB-T, "
                    "Square at the run's eval eps) and/or suite (PGD/APGD curve).")
  flags.DEFINE_string("aa_eps", None, "AutoAttack radius, e.g. 8/255 (default: the "
                      "run's eval eps; required for --saved_model/--keras_model).")
  flags.DEFINE_integer("aa_max_examples", None, "AutoAttack test examples (0: all; "
                       "default all, 5000 for imagenet2012 as RobustBench).")
  flags.DEFINE_integer("aa_apgd_iters", 100, "AutoAttack APGD-CE/APGD-T iterations.")
  flags.DEFINE_integer("aa_targets", 9, "AutoAttack APGD-T/FAB-T target classes.")
  flags.DEFINE_integer("aa_fab_iters", 100, "AutoAttack FAB-T iterations.")
  flags.DEFINE_integer("aa_square_queries", 5000, "AutoAttack Square queries.")
  flags.DEFINE_integer("aa_batch_size", 0, "AutoAttack batch size per device (0: --batch_size).")
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                    "mirrored: spread attack batches over the local GPUs.")
  flags.DEFINE_integer("num_virtual_devices", 0, "Split the CPU into this many devices (tests).")
  flags.DEFINE_string("saved_model", None, "Evaluate this SavedModel (any "
                      "model: model.export(), tf.saved_model.save) instead of a run.")
  flags.DEFINE_string("keras_model", None, "Evaluate this .keras file instead of a run.")
  flags.DEFINE_string("signature", None, "The SavedModel's signature (default: "
                      "its `serve` endpoint, else serving_default).")
  flags.DEFINE_string("dataset", None, "With --saved_model/--keras_model: the "
                      "test split to attack (" + ", ".join(
                          d for d in cfg.DATASETS if d != "synthetic") + ").")
  flags.DEFINE_string("npz_path", None, "With --dataset=npz: the .npz file.")
  flags.DEFINE_integer("image_size", 224, "With --dataset=imagenet2012: the crop size.")
  flags.DEFINE_list("input_range", ["0", "1"], "The pixel range the model "
                    "takes, e.g. 0,255 (images are attacked in [0, 1]).")
  flags.DEFINE_list("input_mean", None, "Per-channel mean the model expects "
                    "subtracted (in --input_range units), e.g. 0.4914,0.4822,0.4465.")
  flags.DEFINE_list("input_std", None, "Per-channel std the model expects "
                    "divided by, after the mean.")


def options_from_flags(f) -> EvalOptions:
  try:
    severities = tuple(int(s) for s in f.severities)
  except ValueError:
    raise EvaluationError(f"--severities={','.join(f.severities)} must be integers 1-5") from None
  eps_list = tuple(cfg.parse_radius("eps_list", e) for e in f.eps_list)
  for eps in eps_list:
    if not 0.0 <= eps < float("inf"):
      raise EvaluationError(f"eps {eps} in --eps_list must be finite and >= 0")
  unknown = sorted(set(f.losses) - {"ce", "margin"})
  if unknown:
    raise EvaluationError(f"unknown --losses {','.join(unknown)}; use ce, margin")
  if f.num_examples < 0 or f.batch_size < 0:
    raise EvaluationError("--num_examples and --batch_size must be >= 0")
  attacks = tuple(f.attacks)
  unknown = sorted(set(attacks) - {"suite", "autoattack"})
  if unknown or not attacks:
    raise EvaluationError(f"--attacks must name suite and/or autoattack, got "
                          f"{','.join(attacks) or '(none)'}")
  aa_eps = None if f.aa_eps is None else cfg.parse_radius("aa_eps", f.aa_eps)
  if aa_eps is not None and not 0.0 <= aa_eps < float("inf"):
    raise EvaluationError(f"--aa_eps={f.aa_eps} must be finite and >= 0")
  if min(f.aa_max_examples or 0, f.aa_batch_size, f.num_virtual_devices) < 0 or min(
      f.aa_apgd_iters, f.aa_targets, f.aa_fab_iters, f.aa_square_queries) < 1:
    raise EvaluationError("--aa_* counts must be >= 1 (examples and batch "
                          "size >= 0)")
  foreign = _foreign_options(f)
  return EvalOptions(
      **foreign, source=f.source, eps_list=eps_list,
      pgd_steps=f.pgd_steps, restarts=f.restarts, losses=tuple(f.losses),
      apgd=f.apgd, apgd_iters=f.apgd_iters, max_examples=f.num_examples,
      batch_size=f.batch_size, data_dir=f.data_dir,
      corruptions=tuple(f.corruptions), severities=severities,
      out_dir=f.out_dir, jit_compile=f.jit_compile,
      attacks=attacks, aa_eps=aa_eps,
      aa_max_examples=f.aa_max_examples, aa_apgd_iters=f.aa_apgd_iters,
      aa_targets=f.aa_targets, aa_fab_iters=f.aa_fab_iters,
      aa_square_queries=f.aa_square_queries, aa_batch_size=f.aa_batch_size,
      strategy=f.strategy, num_virtual_devices=f.num_virtual_devices, norm=f.norm)


def _floats(name: str, values) -> Optional[tuple]:
  if values is None:
    return None
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise EvaluationError(f"--{name}={','.join(values)} must be numbers") from None


def _foreign_options(f) -> dict:
  """The options of a model this package did not train, checked."""
  import os  # pylint: disable=g-import-not-at-top
  sources = [n for n in ("run_dir", "saved_model", "keras_model") if f[n].value]
  if len(sources) != 1:
    raise EvaluationError("give exactly one of --run_dir (a training run), "
                          "--saved_model=DIR or --keras_model=FILE.keras, got "
                          + (", ".join(f"--{n}" for n in sources) or "none"))
  values = {"saved_model": f.saved_model, "keras_model": f.keras_model,
            "signature": f.signature, "dataset": f.dataset,
            "npz_path": f.npz_path, "image_size": f.image_size,
            "input_range": _floats("input_range", f.input_range),
            "input_mean": _floats("input_mean", f.input_mean),
            "input_std": _floats("input_std", f.input_std)}
  if sources[0] == "run_dir":
    return values
  path = f.saved_model or f.keras_model
  flag = "saved_model" if f.saved_model else "keras_model"
  if not os.path.exists(path):
    raise EvaluationError(f"--{flag}={path} does not exist")
  if f.keras_model and not f.keras_model.endswith(".keras"):
    raise EvaluationError(f"--keras_model={path} is not a .keras file (a "
                          "SavedModel folder goes to --saved_model)")
  choices = [d for d in cfg.DATASETS if d != "synthetic"]
  if f.dataset not in choices:
    raise EvaluationError(f"--{flag} needs --dataset, one of {', '.join(choices)}"
                          + (f" (got {f.dataset!r})" if f.dataset else ""))
  if f.dataset == "npz" and not f.npz_path:
    raise EvaluationError("--dataset=npz needs --npz_path=FILE.npz")
  low, high = values["input_range"] if len(values["input_range"]) == 2 else (0, 0)
  if not high > low:
    raise EvaluationError(f"--input_range={','.join(f.input_range)} must be "
                          "two numbers, low < high (e.g. 0,255)")
  if values["input_std"] and min(values["input_std"]) <= 0:
    raise EvaluationError("--input_std values must be > 0")
  if "suite" in f.attacks and f["attacks"].present:
    raise EvaluationError("--attacks=suite (the PGD/APGD curve) reads a training "
                          "run; a model from --saved_model/--keras_model gets "
                          "--attacks=autoattack")
  given = [f"--{name}" for name in RUN_ONLY if f[name].present]
  if given:
    hint = (" (AutoAttack's number of test images is --aa_max_examples)"
            if "--num_examples" in given else "")
    raise EvaluationError(f"{', '.join(given)} only apply to a training run's "
                          f"evaluation, not to --{flag}{hint}")
  if f.aa_eps is None:
    raise EvaluationError(f"--{flag} needs --aa_eps (there is no run to take the "
                          "radius from), e.g. --aa_eps=8/255")
  return values
