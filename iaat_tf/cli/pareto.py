"""The Pareto command: `iaat-pareto` (`python -m iaat_tf.pareto`).

    iaat-pareto --runs='runs/*' --out_dir=pareto

Flags -> `ParetoConfig` -> `runs.pareto` (runs/pareto_run.py): clean vs
robust accuracy across run directories, pareto.csv and pareto.png, their
paths printed. Bad input is one line `iaat_tf.pareto: error: ...`, exit 2.
"""

from typing import Sequence

from iaat_tf.cli import app
from iaat_tf.cli import flags as flag_fields
from iaat_tf.runs.pareto_run import PARETO, ParetoConfig

PROG = "iaat_tf.pareto"
SUMMARY = """\
Compares training runs: clean accuracy (y) against robust accuracy (x), with
the non-dominated runs joined. Writes pareto.csv and pareto.png to --out_dir
and prints their paths."""
HELP_GROUPS = flag_fields.help_groups(
  (ParetoConfig,), (PARETO, "Output"), last=[("Output", "debug")]
)


def define_flags() -> None:
  flag_fields.define(ParetoConfig)


def run(argv: Sequence[str]) -> None:
  """The command after its flags are parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import pareto_run  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  for path in pareto_run.pareto(flag_fields.build(flags.FLAGS, ParetoConfig)):
    print(path)


def main() -> None:
  """The entry point: flags (or --help), then `run`, errors as one line."""
  app.run(
    PROG,
    run,
    summary=SUMMARY,
    groups=HELP_GROUPS,
    define_flags=define_flags,
    errors=(ValueError, OSError),
  )


if __name__ == "__main__":
  main()
