"""The training command's flags and the one place that turns them into a `Config`.

Every training flag is generated from a field of the config dataclasses
(`options.option`: name, help, --help group, bounds; choices from its
`Literal` type) by `cli/flags.py`, so an option is documented and defaulted
once, in `config.py`. Radii accept fractions, e.g. `--eps=8/255`, and
default per `--norm` (`RADIUS_DEFAULTS`). Only the training command (and
tests of it) import this module; library code receives a `Config`.
"""

from absl import flags

from iaat_tf import config as cfg
from iaat_tf.cli import flags as flag_fields
from iaat_tf.config import ConfigError
from iaat_tf.options import options_of

# The radius flags' defaults under each --norm. L2 is RobustBench's 0.5
# track; its gamma and step sizes are the L-inf ones scaled by 0.5 / (8/255)
# (gamma 1.9/255 -> 0.12, 2/255 -> 0.125 = 2.5 eps / 10); no radius cap.
RADIUS_DEFAULTS = {
  "linf": {
    "eps": "8/255",
    "gamma": "1.9/255",
    "eps_max": "1",
    "pgd_min_step": "2/255",
    "eval_eps": "8/255",
    "eval_step_size": "2/255",
  },
  "l2": {
    "eps": "0.5",
    "gamma": "0.12",
    "eps_max": "inf",
    "pgd_min_step": "0.125",
    "eval_eps": "0.5",
    "eval_step_size": "0.125",
  },
}
# The --help groups, in the order they are printed.
HELP_GROUP_ORDER = (
  cfg.RUN,
  cfg.DATA,
  cfg.MODEL,
  cfg.METHOD,
  cfg.PROBES,
  cfg.LOSS,
  cfg.ATTACK,
  cfg.OPTIM,
  cfg.EVAL,
  cfg.EARLY,
)
# Where each section's fields come from: Config's own fields, then each section.
_CLASSES = (cfg.Config, *cfg.SECTIONS.values())


def define_flags() -> None:
  """Defines every training flag (once per process; absl keeps them)."""
  for cls in _CLASSES:
    flag_fields.define(cls, RADIUS_DEFAULTS)


# --help prints the flags in these groups (tests check every flag is in one).
HELP_GROUPS = flag_fields.help_groups(
  _CLASSES, HELP_GROUP_ORDER, last=[(cfg.RUN, "debug")]
)  # The commands' shared --debug (cli/app.py).


def _jit_mode(value: str) -> str:
  """--jit_compile value; the old boolean spellings map to none / attack."""
  legacy = {"false": "none", "0": "none", "true": "attack", "1": "attack"}
  return legacy.get(str(value).lower(), str(value))


def _given(f: flags.FlagValues, cls) -> set:
  """The fields of `cls` whose flags were given on the command line."""
  return {field.name for field, name in options_of(cls) if f[name].present}


def _section(f: flags.FlagValues, cls, **derived):
  """A section from its flags (radii default per --norm)."""

  def parse(field, name):
    if name == "jit_compile":
      return _jit_mode(f[name].value)
    return flag_fields.value(f, field, name, RADIUS_DEFAULTS, f.norm)

  return flag_fields.build(f, cls, parse=parse, **derived)


def config_from_flags(f: flags.FlagValues = flags.FLAGS) -> cfg.Config:
  """Builds the run's `Config` from parsed flags.

  Checks here only what is about the flags themselves (a flag given where it
  means nothing, the norm that picks the radii's defaults); each field
  checks itself, and the training job (`runs.training.prepare`) the rules
  across fields, once.
  """
  imagenet_shaped = f.dataset == "imagenet2012" or (
    f.dataset == "synthetic" and f.synthetic_like == "imagenet2012"
  )
  if f["image_size"].present and not imagenet_shaped:
    raise ConfigError(
      f"--image_size applies to imagenet2012 only; --dataset={f.dataset} keeps its images' own size"
    )
  if f.norm not in cfg.NORMS:  # Before the radii, whose defaults it picks.
    raise ConfigError(f"unknown --norm={f.norm!r}; choose one of {', '.join(cfg.NORMS)}")
  attack = _section(f, cfg.AttackConfig, jit_compile=_jit_mode(f.jit_compile) == "attack")
  if attack.name == "fgsm_rs":  # Its own step rule (config.FGSM_RS).
    attack = cfg.AttackConfig.fgsm_rs(
      bn_mode=attack.bn_mode, norm=attack.norm, jit_compile=attack.jit_compile
    )
  # --alg2_preset's probe_* values; explicit probe_* flags win.
  method = _section(f, cfg.MethodConfig).with_alg2_preset(attack, _given(f, cfg.MethodConfig))
  config = _section(
    f,
    cfg.Config,
    data=_section(f, cfg.DataConfig, seed=f.seed),
    model=_section(f, cfg.ModelConfig),
    attack=attack,
    method=method,
    train=_section(f, cfg.TrainConfig),
    validation=_section(f, cfg.ValidationConfig),
  )
  return config
