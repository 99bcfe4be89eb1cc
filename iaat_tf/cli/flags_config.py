"""Command-line flags and the one place that turns them into a `Config`.

Every training flag is generated from a field of the config dataclasses
(`config.option`: name, help, --help group, range, choices), so an option is
documented and defaulted once, in `config.py`. Radii accept fractions, e.g.
`--eps=8/255`, and default per `--norm` (`RADIUS_DEFAULTS`). Only `main.py`
(and tests of it) import this module; library code receives a `Config`.
"""

import dataclasses
import os
import typing

from absl import flags

from iaat_tf import config as cfg
from iaat_tf.config import ConfigError, parse_radius

# The radius flags' defaults under each --norm. L2 is RobustBench's 0.5
# track; its gamma and step sizes are the L-inf ones scaled by 0.5 / (8/255)
# (gamma 1.9/255 -> 0.12, 2/255 -> 0.125 = 2.5 eps / 10); no radius cap.
RADIUS_DEFAULTS = {
    "linf": {"eps": "8/255", "gamma": "1.9/255", "eps_max": "1",
             "pgd_min_step": "2/255", "eval_eps": "8/255", "eval_step_size": "2/255"},
    "l2": {"eps": "0.5", "gamma": "0.12", "eps_max": "inf",
           "pgd_min_step": "0.125", "eval_eps": "0.5", "eval_step_size": "0.125"}}

# Flags that are not a config field: they set several fields.
EXTRA_FLAGS = {
    "alg2_preset": cfg.PROBES,
}
# Where each section's fields come from: (section name in Config or None for
# Config's own fields, dataclass).
_SECTIONS = ((None, cfg.Config), *((name, cls) for name, cls in cfg.SECTIONS.items()))


def _define(field: dataclasses.Field, name: str) -> None:
  """One absl flag for a config field, typed by the field's annotation."""
  meta, default = field.metadata, field.default
  kind = field.type
  if meta["radius"]:
    flags.DEFINE_string(name, None, f"{meta['help']} In --norm's units.")
    flags.FLAGS[name].shown_default = (f"{RADIUS_DEFAULTS['linf'][name]} (linf), "
                                       f"{RADIUS_DEFAULTS['l2'][name]} (l2)")
  elif kind is bool:
    flags.DEFINE_bool(name, default, meta["help"])
  elif kind is int:
    flags.DEFINE_integer(name, default, meta["help"])
  elif kind is float:
    flags.DEFINE_float(name, default, meta["help"])
  elif typing.get_origin(kind) is tuple:
    flags.DEFINE_list(name, list(default), meta["help"])
  else:  # str, Optional[str]: choices are checked by config.validate (one line).
    flags.DEFINE_string(name, default, meta["help"])


def define_flags() -> None:
  """Defines every training flag (once per process; absl keeps them)."""
  for _, cls in _SECTIONS:
    for field, name in cfg.options_of(cls):
      _define(field, name)
  flags.DEFINE_string("alg2_preset", "exact", "iaat: Algorithm 2's probes, exact (two "
                      "probe attacks like the training attack), fast (shorter probes that "
                      "stop early) or reuse (no probe attacks: the training attack and a "
                      "short extension of it; experiments/iaat_cost); the probe_* flags "
                      "below override a preset's values.")


def help_groups() -> tuple:
  """(group, flag names) in --help order, from the fields' groups."""
  groups = {name: [] for name in cfg.HELP_GROUP_ORDER}
  for _, cls in _SECTIONS:
    for field, name in cfg.options_of(cls):
      groups[field.metadata["group"]].append(name)
  for name, group in EXTRA_FLAGS.items():
    groups[group].insert(0, name)
  groups[cfg.RUN].append("debug")  # The commands' shared --debug (cli/app.py).
  return tuple((group, tuple(names)) for group, names in groups.items())


define_flags()
# --help prints the flags in these groups (tests check every flag is in one).
HELP_GROUPS = help_groups()


def _int_list(name: str, values) -> tuple:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ConfigError(f"--{name}={','.join(values)} must be comma-separated integers") from None


def _jit_mode(value: str) -> str:
  """--jit_compile value; the old boolean spellings map to none / attack."""
  legacy = {"false": "none", "0": "none", "true": "attack", "1": "attack"}
  return legacy.get(str(value).lower(), str(value))


def _probe_settings(f: flags.FlagValues, attack: cfg.AttackConfig) -> dict:
  """MethodConfig's probe_* fields: the preset, overridden by explicit flags."""
  # An explicit --probe_steps keeps the preset's rule for the step size.
  values = cfg.alg2_preset(f.alg2_preset, attack.steps, attack.ratio,
                           f.probe_steps if f["probe_steps"].present else None)
  for name in ("probe_steps", "probe_step_ratio", "probe_batched",
               "probe_early_stop", "probe_only_needed", "probe_source",
               "probe_extra_steps"):
    if f[name].present or name not in values:
      values[name] = f[name].value
  return values


def _value(f: flags.FlagValues, field: dataclasses.Field, name: str):
  """A field's value from its flag: radii parsed (default per --norm), lists
  as tuples, paths with ~ expanded."""
  meta, value = field.metadata, f[name].value
  if meta["radius"]:
    return parse_radius(name, RADIUS_DEFAULTS[f.norm][name] if value is None else value)
  if typing.get_origin(field.type) is tuple:
    return _int_list(name, value)
  if meta["path"] and value:
    return os.path.expanduser(value)
  if name == "jit_compile":
    return _jit_mode(value)
  return value


def _section(f: flags.FlagValues, cls, **derived):
  """A section from its flags; `derived` sets the fields other flags decide."""
  values = {field.name: _value(f, field, name) for field, name in cfg.options_of(cls)}
  return cls(**{**values, **derived})


def config_from_flags(f: flags.FlagValues = flags.FLAGS) -> cfg.Config:
  """Builds and validates the run's `Config` from parsed flags."""
  if not f.output_dir:
    raise ConfigError("--output_dir is required")
  imagenet_shaped = f.dataset == "imagenet2012" or (
      f.dataset == "synthetic" and f.synthetic_like == "imagenet2012")
  if f["image_size"].present and not imagenet_shaped:
    raise ConfigError(f"--image_size applies to imagenet2012 only; --dataset="
                      f"{f.dataset} keeps its images' own size")
  if f.norm not in cfg.NORMS:
    raise ConfigError(f"unknown --norm={f.norm!r}; choose one of {', '.join(cfg.NORMS)}")
  attack = _section(f, cfg.AttackConfig,
                    jit_compile=_jit_mode(f.jit_compile) == "attack")
  if attack.name == "fgsm_rs":  # Its own step rule (config.FGSM_RS).
    attack = cfg.AttackConfig.fgsm_rs(bn_mode=attack.bn_mode, norm=attack.norm,
                                      jit_compile=attack.jit_compile)
  method = _section(f, cfg.MethodConfig)
  method = dataclasses.replace(method, **_probe_settings(f, attack))
  config = _section(
      f, cfg.Config,
      data=_section(f, cfg.DataConfig, seed=f.seed),
      model=_section(f, cfg.ModelConfig), attack=attack, method=method,
      train=_section(f, cfg.TrainConfig), eval=_section(f, cfg.EvalConfig))
  return cfg.validate(config)
