"""`--help` for every command: a usage line naming the command as it was run,
then each group's flags with their defaults, printed before TensorFlow loads."""

import os
import textwrap
from typing import Sequence, Tuple

HELP_ARGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
HelpGroups = Sequence[Tuple[str, Sequence[str]]]


def invoked_as(prog: str, argv0: str) -> str:
  """How the user ran the command: its console script (`iaat-evaluate`), else
  `python -m MODULE` (argv[0] is then the module's file)."""
  name = os.path.basename(argv0 or "")
  if name.startswith("iaat-"):
    return name
  return f"python -m {'iaat_tf.main' if prog == 'iaat_tf' else prog}"


def format_help(prog: str, summary: str, groups: HelpGroups, argv0: str = "") -> str:
  """The text `--help` prints: usage, then each group's flags with defaults."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  lines = [
    f"usage: {invoked_as(prog, argv0)} [--flag=value ...]",
    "",
    summary.strip(),
    "",
  ]
  for title, names in groups:
    lines.append(f"{title}:")
    for name in names:
      flag = flags.FLAGS[name]
      default = flag.default
      if getattr(flag, "shown_default", None):  # e.g. a per-norm default.
        shown = getattr(flag, "shown_default")
      elif isinstance(default, bool):
        shown = str(default).lower()
      elif isinstance(default, (list, tuple)):
        shown = ",".join(str(v) for v in default) or "(none)"
      elif default is None or default == "":
        shown = "(none)"
      else:
        shown = str(default)
      head = f"  --{name}"
      body = f"{flag.help} [default:\0{shown}]"  # Kept on one line.
      wrapped = [w.replace("\0", " ") for w in textwrap.wrap(body, width=79 - 30)]
      if len(head) > 28:
        lines.append(head)
        head = ""
      lines.append(f"{head:<30}{wrapped[0]}")
      lines.extend(" " * 30 + w for w in wrapped[1:])
    lines.append("")
  lines.append(
    "Flags can also come from a file: --flagfile=FILE (one --flag=value "
    "a line), or a shipped experiment by name (--flagfile=quickstart). "
    "Radii accept fractions such as 8/255."
  )
  return "\n".join(lines) + "\n"


def wants_help(argv: Sequence[str]) -> bool:
  return any(a in HELP_ARGS for a in argv[1:])
