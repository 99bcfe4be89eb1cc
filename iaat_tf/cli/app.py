"""What every command line entry point shares (main, evaluate, pareto).

* Errors: one line `PROG: error: MESSAGE` on stderr and exit code 2, for bad
  flags (absl's own errors included) as for bad values found later. PROG is
  what the user typed after `python -m`, shortened to `iaat_tf` for the
  training command: `iaat_tf`, `iaat_tf.evaluate`, `iaat_tf.pareto`.
* `--help` (`-h`, `--helpshort`, `--helpfull`): the command's own flags,
  grouped, with defaults, under a usage line naming the command as it was
  run (`iaat-evaluate`, or `python -m iaat_tf.evaluate`); printed before
  TensorFlow is imported; exit 0.
* A quiet start: TensorFlow's C++ start-up lines (oneDNN, CUDA probing,
  cpu_feature_guard) and Python warnings are hidden unless `--debug`.

This module imports no TensorFlow; `import_tensorflow()` does, quietly.
"""

import os
import sys
import textwrap
import warnings
from typing import Callable, Iterable, NoReturn, Optional, Sequence, Tuple

EXIT_USAGE = 2
HELP_ARGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
# Flags renamed for clarity (old name -> new name); named in the error.
RENAMED_FLAGS = {
  "max_eval_examples": "max_test_examples",
  "eval_max_examples": "val_examples",
  "max_examples": "num_examples",
}

HelpGroups = Sequence[Tuple[str, Sequence[str]]]


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
  from iaat_tf.cli import flagfiles  # pylint: disable=g-import-not-at-top

  argv = list(argv)
  try:
    argv = argv[:1] + flagfiles.expand(argv[1:])
  except flagfiles.FlagfileError as e:
    fail(prog, e)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _absl_error(prog, e)


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


def quiet_environment(debug: bool) -> None:
  """Before TensorFlow is imported: hide its C++ logs unless `debug`."""
  if debug:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore")
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.ERROR)


def import_tensorflow(debug: bool = False, gpu_memory_growth: Optional[bool] = None):
  """Imports TensorFlow (once), hiding the lines its C++ start-up prints.

  `gpu_memory_growth` (True or False) sets TensorFlow's GPU memory policy
  first (devices.memory_env; an exported TF_FORCE_GPU_ALLOW_GROWTH wins).

  TF 2.21 writes its start-up lines (oneDNN notice, CUDA probing) through
  absl's C++ logging before TF_CPP_MIN_LOG_LEVEL applies, so the import runs
  with the process's stderr (file descriptor 2) pointed at /dev/null; Python
  exceptions raised by the import still reach the user after it is restored.
  """
  if gpu_memory_growth is not None:
    from iaat_tf.training import devices  # pylint: disable=g-import-not-at-top

    os.environ.update(devices.memory_env(gpu_memory_growth))
  quiet_environment(debug)
  if debug or "tensorflow" in sys.modules:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return tf
  sys.stderr.flush()
  saved = os.dup(2)
  null = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(null, 2)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)
  tf.get_logger().setLevel("ERROR")
  return tf


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
  if wants_help(argv):
    sys.stdout.write(format_help(prog, summary, groups, argv[0] if argv else ""))
    sys.exit(0)
  return parse_flags(prog, argv)


def debug() -> bool:
  from absl import flags  # pylint: disable=g-import-not-at-top

  return "debug" in flags.FLAGS and bool(flags.FLAGS["debug"].value)


def call(
  prog: str,
  main: Callable[[list], object],
  argv: Sequence[str],
  errors: Iterable[type[BaseException]] = (ValueError,),
) -> None:
  """Runs `main(argv)`; any of `errors` becomes `PROG: error: ...`, exit 2."""
  try:
    main(list(argv))
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
