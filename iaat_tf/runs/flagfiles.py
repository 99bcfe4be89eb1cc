"""Flagfiles by name: the shipped experiments, from any folder.

The experiments' flagfiles live in the repository's `flags/` folder and
ship inside the wheel as `iaat_tf/flagfiles/` (pyproject.toml maps one onto
the other). `--flagfile=` then takes, in this order:

* a path to a file that exists (your own flagfile; relative to the current
  folder, as absl reads it);
* the name of a shipped flagfile, with or without `.flags` or a leading
  `flags/`: `--flagfile=quickstart`, `--flagfile=flags/quickstart.flags`.

`expand(argv)` replaces every `--flagfile` argument by the lines of its file
(nested `--flagfile=` lines included, resolved the same way), with absl's
rules: one argument a line, blank lines and lines starting with `#` or `//`
skipped. So a shipped flagfile that includes another works from any folder.
`flagfile(name)` gives a shipped file's path (`iaat_tf.flagfile` from Python).
"""

import os
from typing import List, Sequence

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The wheel's copy, then a checkout's folder (editable installs, Bazel).
_DIRECTORIES = (
  os.path.join(_PACKAGE, "flagfiles"),
  os.path.join(os.path.dirname(_PACKAGE), "flags"),
)
MAX_DEPTH = 20  # Nesting deeper than this is a loop.


class FlagfileError(ValueError):
  """A --flagfile that names no file and no shipped flagfile (one line)."""


def directory() -> str:
  """The folder of the shipped flagfiles."""
  for path in _DIRECTORIES:
    if os.path.isdir(path):
      return path
  raise FlagfileError(
    "the shipped flagfiles are missing (iaat_tf/flagfiles "
    "in an installed package, flags/ in a checkout)"
  )


def names() -> List[str]:
  """The shipped flagfiles' names (without `.flags`), sorted."""
  return sorted(f[: -len(".flags")] for f in os.listdir(directory()) if f.endswith(".flags"))


def flagfile(name: str) -> str:
  """The path of the shipped flagfile `name` ("quickstart", "quickstart.flags"
  or "flags/quickstart.flags")."""
  base = os.path.basename(name)
  base = base[: -len(".flags")] if base.endswith(".flags") else base
  path = os.path.join(directory(), base + ".flags")
  if not os.path.isfile(path):
    raise FlagfileError(
      f"--flagfile={name}: no such file, and no shipped "
      f"flagfile of that name (shipped: {', '.join(names())})"
    )
  return path


def resolve(value: str) -> str:
  """A --flagfile value as a readable path: the file itself, or a shipped one."""
  path = os.path.expanduser(value)
  if os.path.isfile(path):
    return path
  return flagfile(value)


def _lines(path: str, depth: int) -> List[str]:
  if depth > MAX_DEPTH:
    raise FlagfileError(
      f"--flagfile={path}: flagfiles nested more than {MAX_DEPTH} deep (does one include itself?)"
    )
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise FlagfileError(f"--flagfile={path}: {e.strerror}") from None
  out = []
  for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith(("#", "//")):
      continue
    out.extend(_expand_one(line, depth + 1))
  return out


def _expand_one(arg: str, depth: int) -> List[str]:
  if arg.startswith("--flagfile="):
    return _lines(resolve(arg[len("--flagfile=") :]), depth)
  return [arg]


def expand(args: Sequence[str]) -> List[str]:
  """`args` with every --flagfile=X (or --flagfile X) replaced by X's lines."""
  out, i = [], 0
  args = list(args)
  while i < len(args):
    arg = args[i]
    if arg in ("--flagfile", "-flagfile") and i + 1 < len(args):
      out.extend(_lines(resolve(args[i + 1]), 1))
      i += 2
      continue
    if arg.startswith("-flagfile="):
      arg = "-" + arg
    out.extend(_expand_one(arg, 0))
    i += 1
  return out
