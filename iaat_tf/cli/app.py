"""What every command's entry point shares: flags in, one-line errors out.

* Errors: one line `PROG: error: MESSAGE` on stderr and exit code 2, for bad
  flags (absl's own errors included) as for bad values found later. PROG is
  what the user typed after `python -m`, shortened to `iaat_tf` for the
  training command: `iaat_tf`, `iaat_tf.evaluate`, `iaat_tf.pareto`,
  `iaat_tf.frontier`.
* `--help` (cli/help_text.py): the command's own flags, grouped, with defaults;
  printed before TensorFlow is imported; exit 0.
* `--debug`: TensorFlow's own log lines (hidden by default:
  cli/tensorflow_start.py).

This module imports no TensorFlow.
"""

import sys
from typing import Callable, Iterable, NoReturn, Optional, Sequence, TypeVar

from iaat_tf.cli import help_text
from iaat_tf.cli.help_text import HelpGroups

T = TypeVar("T")
EXIT_USAGE = 2
# Flags renamed for clarity (old name -> new name); named in the error.
RENAMED_FLAGS = {
  "max_eval_examples": "max_test_examples",
  "eval_max_examples": "val_examples",
  "max_examples": "num_examples",
}


def one_line(message: object) -> str:
  return " ".join(str(message).replace("ERROR:: ", "").split())


def fail(prog: str, message: object) -> NoReturn:
  """Prints `PROG: error: MESSAGE` (one line) on stderr and exits 2."""
  print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def define_debug_flag() -> None:
  """--debug: show TensorFlow's log lines and warnings (hidden by default)."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if "debug" not in flags.FLAGS:
    flags.DEFINE_bool(
      "debug",
      False,
      "Show TensorFlow's start-up/log lines and Python warnings (hidden by default).",
    )


def flag_error_line(error: Exception) -> str:
  """absl's parse error as one line (a renamed flag's new name added)."""
  text = str(error).replace("ERROR:: ", "").strip()
  first = text.splitlines()[0] if text else type(error).__name__
  for old, new in RENAMED_FLAGS.items():
    if f"Unknown command line flag '{old}'" in first:
      first += f" (renamed: use --{new})"
  return first


def _absl_error(prog: str, error: Exception) -> NoReturn:
  fail(prog, flag_error_line(error))


def parse_flags(prog: str, argv: Sequence[str]) -> list:
  """absl parsing with one-line errors and exit 2 (bad flag, flagfile, value).

  `--flagfile=` takes a path or a shipped flagfile's name (flagfiles.py).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import flagfiles  # pylint: disable=g-import-not-at-top

  argv = list(argv)
  try:
    argv = argv[:1] + flagfiles.expand(argv[1:])
  except flagfiles.FlagfileError as e:
    fail(prog, e)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _absl_error(prog, e)


def start(
  prog: str,
  *,
  summary: str,
  groups: HelpGroups,
  define_flags: Optional[Callable[[], None]] = None,
  argv: Optional[Sequence[str]] = None,
) -> list:
  """Defines and parses the flags (or prints --help and exits 0).

  Returns the remaining argv. Bad flags end the process with one line and
  exit 2. Call `import_tensorflow(debug())` next, before any TF import.
  """
  argv = list(sys.argv if argv is None else argv)
  if define_flags is not None:
    define_flags()
  define_debug_flag()
  if help_text.wants_help(argv):
    sys.stdout.write(help_text.format_help(prog, summary, groups, argv[0] if argv else ""))
    sys.exit(0)
  return parse_flags(prog, argv)


def debug() -> bool:
  from absl import flags  # pylint: disable=g-import-not-at-top

  return "debug" in flags.FLAGS and bool(flags.FLAGS["debug"].value)


def call(
  prog: str,
  main: Callable[[list], T],
  argv: Sequence[str],
  errors: Iterable[type[BaseException]] = (ValueError,),
) -> T:
  """Returns `main(argv)`; any of `errors` becomes `PROG: error: ...`, exit 2."""
  try:
    return main(list(argv))
  except tuple(errors) as e:  # pylint: disable=catching-non-exception
    fail(prog, e)


def run(
  prog: str,
  main: Callable[[list], None],
  *,
  summary: str,
  groups: HelpGroups,
  define_flags: Optional[Callable[[], None]] = None,
  errors: Iterable[type[BaseException]] = (ValueError,),
  argv: Optional[Sequence[str]] = None,
) -> None:
  """An entry point: flags (or --help), then `main(argv)` with one-line errors."""
  argv = start(prog, summary=summary, groups=groups, define_flags=define_flags, argv=argv)
  call(prog, main, argv, errors)
