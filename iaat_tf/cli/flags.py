"""absl flags generated from `options.option` fields, for every command.

`define(cls)` defines one flag per option field of a dataclass (typed by its
annotation), `build(f, cls)` builds the dataclass back from the parsed flags,
and `help_groups` lists the flags by their fields' groups for `--help`. A
command's options are thus written once, as fields; adding one is one line.

Flag kinds, from the field's type: bool, int, float, str (a `Literal`'s
choices are checked by the section, as one line), tuples as comma-separated
lists (`tuple[int, ...]`, `tuple[float, ...]`, `tuple[str, ...]`), Optional
values default to None. Radius fields (`option(radius=True)`) take fractions
(8/255) as strings and may default per --norm (`radius_defaults`).
"""

import dataclasses
import os
import shlex
from typing import Callable, Iterable, Optional

from absl import flags

from iaat_tf.options import ConfigError, base_type, choices_of, item_type, options_of


def parse_radius(name: str, text: str) -> float:
  """'8/255' or '0.03' -> float; ConfigError naming the flag otherwise."""
  try:
    if "/" in str(text):
      num, den = str(text).split("/")
      return float(num) / float(den)
    return float(text)
  except (ValueError, ZeroDivisionError):
    raise ConfigError(f"--{name}={text!r} is not a number or fraction like 8/255") from None


def _item_type(kind):
  """tuple[X, ...] -> X, as the flag parses it (str for a Literal's values)."""
  item = item_type(kind)
  return str if choices_of(item) else item


def define(cls, radius_defaults: Optional[dict] = None) -> None:
  """One absl flag per option field of `cls`; a flag already defined in this
  process is kept (a command's `define_flags` may run twice).

  `radius_defaults`: {norm: {flag: default text}} for radius fields whose
  default depends on --norm (their field default is then unused).
  """
  for field, name in options_of(cls):
    if name in flags.FLAGS:
      continue
    meta, default, kind = field.metadata, field.default, base_type(field.type)
    if meta["radius"]:
      if radius_defaults and name in radius_defaults["linf"]:
        flags.DEFINE_string(name, None, f"{meta['help']} In --norm's units.")
        # Shown by --help instead of the flag's None (cli/app.py).
        shown = ", ".join(f"{values[name]} ({norm})" for norm, values in radius_defaults.items())
        setattr(flags.FLAGS[name], "shown_default", shown)
      else:
        flags.DEFINE_string(name, None if default is None else str(default), meta["help"])
    elif kind is bool:
      flags.DEFINE_bool(name, default, meta["help"])
    elif kind is int:
      flags.DEFINE_integer(name, default, meta["help"])
    elif kind is float:
      flags.DEFINE_float(name, default, meta["help"])
    elif meta["words"]:
      flags.DEFINE_string(name, " ".join(default), meta["help"])
    elif meta["repeated"]:
      flags.DEFINE_multi_string(name, list(default), meta["help"])
    elif _item_type(kind) is not None:
      flags.DEFINE_list(name, None if default is None else [str(v) for v in default], meta["help"])
    else:  # str, Literal: choices are checked by the section (one line).
      flags.DEFINE_string(name, default, meta["help"])


def _items(name: str, values, item) -> tuple:
  try:
    return tuple(item(v) for v in values)
  except ValueError:
    what = {int: "integers", float: "numbers"}.get(item, "values")
    raise ConfigError(f"--{name}={','.join(values)} must be comma-separated {what}") from None


def value(
  f: flags.FlagValues,
  field: dataclasses.Field,
  name: str,
  radius_defaults: Optional[dict] = None,
  norm: str = "linf",
):
  """A field's value from its flag: radii parsed (default per --norm), lists
  as tuples of the item type, paths with ~ expanded."""
  meta, raw = field.metadata, f[name].value
  if meta["radius"]:
    if raw is None and radius_defaults and name in radius_defaults[norm]:
      raw = radius_defaults[norm][name]
    return None if raw is None else parse_radius(name, raw)
  item = _item_type(field.type)
  if meta["repeated"]:
    return tuple(raw or ())
  if meta["words"]:
    return tuple(shlex.split(raw or ""))
  if item is not None:
    if raw is None:
      return None
    return tuple(parse_radius(name, v) for v in raw) if item is float else _items(name, raw, item)
  if meta["path"] and raw:
    return os.path.expanduser(raw)
  return raw


def build(f: flags.FlagValues, cls, *, parse: Optional[Callable] = None, **derived):
  """`cls` from its flags; `derived` sets the fields other flags decide;
  `parse(field, name)`, when given, reads a field instead of `value`."""
  read = parse or (lambda field, name: value(f, field, name))
  values = {field.name: read(field, name) for field, name in options_of(cls)}
  return cls(**{**values, **derived})


def help_groups(
  classes: Iterable,
  order: Iterable[str],
  *,
  first: Iterable[tuple] = (),
  last: Iterable[tuple] = (),
) -> tuple:
  """(group, flag names) in `order`, from the fields' groups of `classes`.

  `first` and `last` add (group, flag name) pairs for flags that are not
  fields (e.g. a preset first, the shared --debug last). Empty groups are
  left out.
  """
  groups: dict[str, list[str]] = {name: [] for name in order}
  for cls in classes:
    for field, name in options_of(cls):
      groups[field.metadata["group"]].append(name)
  for group, name in first:
    groups[group].insert(0, name)
  for group, name in last:
    groups[group].append(name)
  return tuple((group, tuple(names)) for group, names in groups.items() if names)
