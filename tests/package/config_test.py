"""The typed configuration: config.py's sections, options.py's field checks,
validation.py's rules across fields, and run_io.config_from_dict."""

import dataclasses
import re
import typing

import pytest

from iaat_tf import config as cfg
from iaat_tf import options, run_io, validation


def test_every_config_section_checks_its_own_fields_when_built():
  """Choices (the field's Literal type) and bounds come from the fields
  (options.option) and are checked on construction, also by
  dataclasses.replace; one line each."""
  cases = [
    (cfg.MethodConfig, {"method": "iaat_fast"}, "unknown --method='iaat_fast'"),
    (cfg.MethodConfig, {"probe_extra_steps": 0}, "--probe_extra_steps=0 must be >= 1"),
    (cfg.MethodConfig, {"beta": 1.5}, "--beta=1.5 must be in [0, 1]"),
    (cfg.AttackConfig, {"bn_mode": "eval"}, "unknown --attack_bn_mode='eval'"),
    (cfg.TrainConfig, {"epochs": 0}, "--epochs=0 must be >= 1"),
    (cfg.TrainConfig, {"learning_rate": 0.0}, "--learning_rate=0.0 must be > 0"),
    (cfg.TrainConfig, {"ema_decay": 1.0}, "--ema_decay=1.0 must be in [0, 1)"),
    (cfg.DataConfig, {"holdout_fraction": 1.0}, "--holdout_fraction=1.0 must be in (0, 1)"),
    (cfg.DataConfig, {"shuffle_buffer": -2}, "--shuffle_buffer=-2 must be >= 0"),
  ]
  for section, values, message in cases:
    with pytest.raises(cfg.ConfigError, match=re.escape(message)) as error:
      section(**values)
    assert "\n" not in str(error.value)
    with pytest.raises(cfg.ConfigError, match=re.escape(message)):
      dataclasses.replace(section(), **values)
  # The edges of each bound are accepted.
  cfg.MethodConfig(beta=0.0), cfg.MethodConfig(beta=1.0), cfg.TrainConfig(ema_decay=0.0)


def test_choice_fields_are_literals_and_their_tuples_agree():
  for section in (cfg.Config, *cfg.SECTIONS.values()):
    for field in dataclasses.fields(section):
      if "help" in field.metadata and field.type is str:
        # A free string: not one of the listed choices' names.
        assert field.name not in ("method", "dataset", "norm", "loss"), field.name
  assert options.choices_of(cfg.MethodConfig.__dataclass_fields__["method"].type) == cfg.METHODS
  assert cfg.METHODS == typing.get_args(cfg.Method)
  assert options.choices_of(typing.Optional[cfg.Norm]) == ("linf", "l2")
  assert options.choices_of(int) == ()


def test_validate_checks_rules_across_fields_once_each():
  ok = cfg.Config(output_dir="/tmp/x")
  assert validation.validate(ok) is ok  # The defaults pass.
  cases = [
    (dict(method=cfg.MethodConfig(eps=0.5, eps_max=0.3)), "larger than --eps_max"),
    (
      dict(method=cfg.MethodConfig(method="pgd_at", s_minus="adversarial")),
      "--s_minus=adversarial",
    ),
    (dict(method=cfg.MethodConfig(eps=2.0, eps_max=3.0)), "out of range"),
    (
      dict(train=cfg.TrainConfig(jit_compile="step", strategy="mirrored")),
      "--jit_compile=step needs --strategy=default",
    ),
    (dict(data=cfg.DataConfig(num_classes=1)), "--num_classes=1 must be >= 2"),
  ]
  for changes, message in cases:
    with pytest.raises(cfg.ConfigError, match=re.escape(message)) as error:
      validation.validate(dataclasses.replace(ok, **changes))
    assert "\n" not in str(error.value)
  # The L2 threat model has no [0, 1] bound on radii.
  l2 = dataclasses.replace(
    ok,
    attack=cfg.AttackConfig(norm="l2"),
    method=cfg.MethodConfig(eps=2.0, eps_max=float("inf")),
    validation=cfg.ValidationConfig(eps=2.0),
  )
  validation.validate(l2)


def test_a_runs_config_json_loads_back_including_old_spellings():
  config = cfg.Config(output_dir="/tmp/x", train=cfg.TrainConfig(lr_boundaries=(3, 5)))
  saved = config.to_dict()
  assert run_io.config_from_dict(saved) == config
  # Before --jit_compile took a mode it was a boolean; fields since removed
  # are dropped.
  saved["train"]["jit_compile"] = True
  saved["method"]["a_removed_field"] = 1
  loaded = run_io.config_from_dict(saved)
  assert loaded.train.jit_compile == "attack" and loaded.train.lr_boundaries == (3, 5)
