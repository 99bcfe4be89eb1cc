"""The frontier job's options: `FrontierConfig`, its settings, and their checks.

`FrontierConfig` holds which uniform radii and adaptive settings, which
seeds, how each run is judged (AutoAttack's shared `AutoAttackOptions`) and
where runs execute; the command line generates its flags from the fields
(cli/frontier.py). `settings_of` turns it into the named settings
(`Setting`: a name and the training flags it adds); `check` refuses a
frontier that cannot run, before any run starts (FrontierError, one line).
TensorFlow-free.
"""

import dataclasses
import os
from typing import Literal, Optional, Tuple

from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.options import Section, document_fields, option

EXPERIMENT, EVALUATION, DEVICES = "Experiment", "Evaluation", "Devices"


class FrontierError(ValueError):
  """Bad input to the frontier command (one line)."""


@dataclasses.dataclass(frozen=True)
class Setting:
  """One training setting: a name and the flags it adds to the experiment."""

  name: str
  method: str
  flags: tuple

  def run_dir(self, out_dir: str, seed: int) -> str:
    return os.path.join(out_dir, "runs", f"{self.name}_seed{seed}")


@dataclasses.dataclass(frozen=True)
class FrontierConfig(Section):
  """The frontier experiment: which settings, how many seeds, how judged."""

  experiment: str = option(
    "",
    "The experiment: a shipped flagfile's name (quickstart) or a path to your own flagfile.",
    group=EXPERIMENT,
  )
  out_dir: str = option(
    "", "Output folder (runs/, logs/, frontier.*).", group=EXPERIMENT, path=True
  )
  pgd_at_eps: Tuple[float, ...] = option(
    (), "Uniform PGD-AT radii, e.g. 0.05,0.1,0.2 or 4/255,8/255.", group=EXPERIMENT
  )
  iaat: Tuple[str, ...] = option(
    (),
    "An adaptive setting: flag=value pairs over the experiment's (repeat the "
    "flag for several), e.g. --iaat='eps=0.3 gamma=0.1' or --iaat=method=iaat_cheap.",
    group=EXPERIMENT,
    repeated=True,
  )
  seeds: Tuple[int, ...] = option(
    (0, 1, 2),
    "Seeds of every setting, or auto: 3 each, then one more per round to the "
    "adaptive settings whose verdict is undecided and the PGD-AT radii that bracket "
    "them, up to --max_seeds (reports/sequential.py).",
    group=EXPERIMENT,
  )
  max_seeds: int = option(
    5, "With --seeds=auto: the most seeds a setting gets.", group=EXPERIMENT, minimum=3
  )
  detect: float = option(
    0.0,
    "An advantage in AutoAttack points (e.g. 2): each verdict says about how many seeds "
    "per setting would find it 80% of the time (0: not asked).",
    group=EVALUATION,
    minimum=0,
  )
  # Set by --seeds=auto (not a flag of its own).
  auto_seeds: bool = option(False, "Seeds chosen by the sequential design.", flag=None)
  train_args: Tuple[str, ...] = option(
    (),
    "Training flags for every run, e.g. '--epochs=30 --warmup_epochs=5' (one string).",
    group=EXPERIMENT,
    words=True,
  )
  jobs: int = option(
    0,
    "Runs at a time (0: one per device slot, --gpus_per_run GPUs each; 1 on a "
    "machine without GPUs).",
    group=DEVICES,
    minimum=0,
  )
  gpus: str = option(
    "auto",
    "GPUs to share out: auto (CUDA_VISIBLE_DEVICES if set, else every GPU "
    "nvidia-smi lists), none, or ids like 0,1,2,3.",
    group=DEVICES,
  )
  gpus_per_run: int = option(
    1,
    "GPUs each run gets (its processes see only those: CUDA_VISIBLE_DEVICES); "
    "with 2+, set --strategy=mirrored in the experiment to use them.",
    group=DEVICES,
    minimum=0,
  )
  executor: Literal["local", "ray"] = option(
    "local",
    "Where runs execute: local (this machine, --jobs at a time in device slots) or "
    "ray (each run a Ray task with --gpus_per_run GPUs and --cpus_per_run CPUs; "
    "pip install \"iaat_tf[ray]\"; --out_dir on storage every worker shares).",
    group=DEVICES,
  )
  ray_address: Optional[str] = option(
    None,
    "With --executor=ray: the cluster to join (e.g. auto, or ray://HOST:10001); "
    "default: a new local cluster.",
    group=DEVICES,
  )
  cpus_per_run: float = option(
    1.0, "With --executor=ray: CPUs each run's task asks for.", group=DEVICES, above=0
  )
  gpu_memory_growth: bool = option(
    True,
    "Runs allocate GPU memory as needed (TF_FORCE_GPU_ALLOW_GROWTH); "
    "--nogpu_memory_growth: TensorFlow's default, all of each visible GPU.",
    group=DEVICES,
  )
  # Uniform PGD-AT's radius ramps from 0 over the experiment's --warmup_epochs:
  # the start IAAT's warmup gives its settings. False: full radius from the
  # first step.
  uniform_ramp: bool = option(
    True,
    "Ramp uniform PGD-AT's radius from 0 over the experiment's "
    "--warmup_epochs, the start IAAT's warmup gives its settings "
    "(--nouniform_ramp: the full radius from the first step).",
    group=EXPERIMENT,
  )
  curve: bool = option(
    True, "Also the robustness curve over radii (evaluate's suite).", group=EVALUATION
  )
  autoattack: AutoAttackOptions = AutoAttackOptions()

  def __post_init__(self):
    super().__post_init__()
    if self.auto_seeds:
      return
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise FrontierError("--seeds must list distinct integers, or be auto")


document_fields(FrontierConfig)


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def warmup_epochs(options: FrontierConfig) -> int:
  """The experiment's --warmup_epochs (its flagfile, then --train_args)."""
  from iaat_tf import config as cfg  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import flagfiles  # pylint: disable=g-import-not-at-top

  value = cfg.MethodConfig().warmup_epochs
  try:
    args = flagfiles.expand([f"--flagfile={options.experiment}", *options.train_args])
  except flagfiles.FlagfileError as e:
    raise FrontierError(str(e).replace("--flagfile", "--experiment")) from None
  for arg in args:
    if arg.startswith("--warmup_epochs="):
      try:
        value = int(arg.partition("=")[2])
      except ValueError:
        raise FrontierError(f"{arg}: not an integer") from None
  return value


def settings_of(options: FrontierConfig) -> list[Setting]:
  """PGD-AT at each radius (ramped over the experiment's warmup unless
  `uniform_ramp` is off), then each adaptive setting (default method iaat)."""
  out = []
  ramp = warmup_epochs(options) if options.uniform_ramp else 0
  for eps in options.pgd_at_eps:
    name = f"pgd_at_eps{eps:.4g}"
    flags: tuple[str, ...] = ("--method=pgd_at", f"--eps={eps!r}")
    if ramp:
      name, flags = f"{name}_ramp{ramp}", flags + (f"--eps_ramp_epochs={ramp}",)
    out.append(Setting(name, "pgd_at", flags))
  for text in options.iaat:
    pairs = [p for p in text.replace(",", " ").split() if p]
    values = {}
    for pair in pairs:
      key, sep, value = pair.lstrip("-").partition("=")
      if not sep or not key or not value:
        raise FrontierError(
          f"--iaat={text!r}: write flag=value pairs, e.g. --iaat='eps=0.3 gamma=0.1'"
        )
      values[key] = value
    method = values.pop("method", "iaat")
    if method not in ("iaat", "iaat_cheap"):
      raise FrontierError(
        f"--iaat={text!r}: method={method} is not adaptive "
        "(iaat or iaat_cheap; uniform radii go to --pgd_at_eps)"
      )
    name = _slug("_".join([method] + [f"{k}{v}" for k, v in values.items()]))
    out.append(
      Setting(
        name, method, (f"--method={method}",) + tuple(f"--{k}={v}" for k, v in values.items())
      )
    )
  names = [s.name for s in out]
  if len(set(names)) != len(names):
    raise FrontierError(f"two settings are the same: {', '.join(names)}")
  return out


def check(options: FrontierConfig) -> list[Setting]:
  """The frontier's settings, or FrontierError for what no run could fix."""
  if not options.experiment:
    raise FrontierError("--experiment is required (e.g. --experiment=quickstart)")
  if not options.out_dir:
    raise FrontierError("--out_dir is required")
  if not options.pgd_at_eps:
    raise FrontierError("--pgd_at_eps needs at least one radius (the frontier is PGD-AT's)")
  return settings_of(options)  # Bad --iaat settings fail here, before any run.
