"""The one option mechanism: a typed field that is also a command-line flag.

Every option of every command (training, evaluation, frontier, Pareto) is a
field of a frozen dataclass made with `option(...)`: its default, help,
--help group, bounds and flag name are written once, there. The choices of a
field are its type's: a `Literal[...]` field accepts exactly those values.
`Section` checks each field on construction (also by
`dataclasses.replace`): a value outside its choices or bounds raises a
one-line `ConfigError` naming the flag. Rules that span several fields are
`validation.py`'s (the training run's) or the command's own. The command
line turns the fields into absl flags (`cli/flags.py`); nothing here reads
flags or imports TensorFlow.
"""

import dataclasses
import typing
from typing import Literal, Optional, Tuple


class ConfigError(ValueError):
  """A user-facing configuration problem; its message is one line."""


def first_line(error: BaseException) -> str:
  """An exception's first message line (or its type's name), for one-line errors."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def option(
  default,
  help: str,
  *,
  flag: Optional[str] = "",  # pylint: disable=redefined-builtin
  group: str = "",
  minimum: Optional[float] = None,
  maximum: Optional[float] = None,
  above: Optional[float] = None,
  below: Optional[float] = None,
  radius: bool = False,
  path: bool = False,
  repeated: bool = False,
  words: bool = False,
):
  """A config field and its command-line flag, documented once.

  `help` is the flag's help and the field's documentation. `flag` is the
  flag's name ("": the field's name; None: not a flag, set by other flags).
  `group` is its --help group. Bounds: `minimum` <= value <= `maximum`,
  `above` < value < `below` (a None value is not checked). `radius` flags
  accept fractions (8/255) and may default per --norm; `path` flags expand ~;
  a `repeated` tuple flag is given once per value (--iaat=a --iaat=b), a
  `words` tuple flag as one string split like a shell line, instead of as a
  comma-separated list.
  """
  return dataclasses.field(
    default=default,
    metadata={
      "help": help,
      "flag": flag,
      "group": group,
      "minimum": minimum,
      "maximum": maximum,
      "above": above,
      "below": below,
      "radius": radius,
      "path": path,
      "repeated": repeated,
      "words": words,
    },
  )


def check(condition: bool, message: str) -> None:
  """ConfigError(message) unless `condition`."""
  if not condition:
    raise ConfigError(message)


def base_type(kind):
  """Optional[X] -> X; other types unchanged."""
  if typing.get_origin(kind) is typing.Union:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if len(args) == 1 else kind
  return kind


def choices_of(kind) -> Tuple:
  """The values a `Literal[...]` (or Optional[Literal[...]]) type allows; ()."""
  kind = base_type(kind)
  return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()


def item_type(kind):
  """tuple[X, ...] (or Optional of it) -> X (Optional removed); None for other types."""
  kind = base_type(kind)
  if typing.get_origin(kind) is tuple:
    return base_type(typing.get_args(kind)[0])
  return None


def options_of(cls) -> list:
  """(field, flag name) of every field of `cls` that is a flag."""
  out = []
  for field in dataclasses.fields(cls):
    if "help" not in field.metadata or field.metadata["flag"] is None:
      continue
    out.append((field, field.metadata["flag"] or field.name))
  return out


def _bounds_message(flag: str, value, meta) -> Optional[str]:
  """None if `value` is within the field's bounds, else the one-line complaint."""
  low, high, low_open, high_open = (meta[k] for k in ("minimum", "maximum", "above", "below"))
  if (
    (low is None or value >= low)
    and (high is None or value <= high)
    and (low_open is None or value > low_open)
    and (high_open is None or value < high_open)
  ):
    return None
  if high is None and high_open is None:
    return (
      f"--{flag}={value} must be >= {low:g}"
      if low is not None
      else f"--{flag}={value} must be > {low_open:g}"
    )
  left = f"[{low:g}" if low is not None else f"({low_open:g}"
  right = f"{high:g}]" if high is not None else f"{high_open:g})"
  return f"--{flag}={value} must be in {left}, {right}"


def check_fields(section) -> None:
  """ConfigError for a field outside its choices or its bounds."""
  for field, flag in options_of(type(section)):
    value, meta = getattr(section, field.name), field.metadata
    choices = choices_of(field.type)
    if choices and value is not None:
      check(
        value in choices,
        f"unknown --{flag}={value!r}; choose one of {', '.join(str(c) for c in choices)}",
      )
    items = choices_of(item_type(field.type))
    for item in (value or ()) if items else ():
      check(
        item in items,
        f"unknown --{flag} value {item!r}; choose from {', '.join(str(c) for c in items)}",
      )
    if value is not None and not isinstance(value, (str, tuple, bool)):
      message = _bounds_message(flag, value, meta)
      check(message is None, message or "")


class Section:
  """Base of the config sections: each checks its own fields on construction."""

  def __post_init__(self):
    check_fields(self)


def document_fields(cls) -> None:
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


def flag_args(section) -> list:
  """["--flag=value", ...]: the flags that rebuild `section`'s non-None
  fields (a command passing its options on to another)."""
  args = []
  for field, flag in options_of(type(section)):
    value = getattr(section, field.name)
    if value is None:
      continue
    if isinstance(value, bool):
      args.append(f"--{flag}" if value else f"--no{flag}")
    elif isinstance(value, tuple):
      args.append(f"--{flag}={','.join(str(v) for v in value)}")
    else:
      args.append(f"--{flag}={value!r}" if isinstance(value, float) else f"--{flag}={value}")
  return args
