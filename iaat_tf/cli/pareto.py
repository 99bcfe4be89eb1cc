"""The Pareto command: clean vs robust accuracy across trainings (reports/pareto.py).

  iaat-pareto --runs 'runs/*' --out_dir runs/report    # or python -m iaat_tf.pareto

Globs are allowed; a glob keeps only the directories with a results.json.
Writes pareto.csv and pareto.png (`reports.pareto.write_pareto`). Errors
(e.g. a missing results.json) are one line `iaat_tf.pareto: error: ...` on
stderr with exit code 2 (cli/app.py). Importing this module defines no absl
flags and imports no TensorFlow.
"""

import dataclasses
import glob
import os
from typing import Optional, Sequence

from iaat_tf.cli import app
from iaat_tf.cli import flags as flag_fields
from iaat_tf.options import Section, option
from iaat_tf.reports.pareto import collect_runs, write_pareto

PROG = "iaat_tf.pareto"


def expand_run_args(spec: str) -> list[str]:
  """Comma-separated dirs/globs -> run dirs (globs keep dirs with results)."""
  run_dirs = []
  for item in (s.strip() for s in spec.split(",")):
    if not item:
      continue
    if glob.has_magic(item):
      matches = sorted(
        d for d in glob.glob(item) if os.path.isfile(os.path.join(d, "results.json"))
      )
      if not matches:
        raise ValueError(f"{item}: glob matches no run directory with a results.json")
      run_dirs.extend(matches)
    elif not os.path.isdir(item):
      what = "is a file, not a run directory" if os.path.exists(item) else "does not exist"
      raise ValueError(f"--runs: {item} {what}")
    else:
      run_dirs.append(item)
  if not run_dirs:
    raise ValueError("--runs is empty")
  return list(dict.fromkeys(run_dirs))  # De-duplicate, keep order.


SUMMARY = """\
Compares training runs: clean accuracy (y) against robust accuracy (x), with
the non-dominated runs joined. Writes pareto.csv and pareto.png to --out_dir
and prints their paths."""
PARETO = "Pareto plot"


@dataclasses.dataclass(frozen=True)
class ParetoConfig(Section):
  """Which runs to compare and where the table and plot go."""

  runs: Optional[str] = option(
    None, "Comma-separated run directories or globs (e.g. 'runs/*').", group=PARETO
  )
  out_dir: Optional[str] = option(None, "Where to write pareto.csv/.png.", group=PARETO, path=True)


HELP_GROUPS = flag_fields.help_groups(
  (ParetoConfig,), (PARETO, "Output"), last=[("Output", "debug")]
)


def _define_flags() -> None:
  flag_fields.define(ParetoConfig)


def run(argv: Sequence[str]) -> None:
  """The command after its flags are parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  options = flag_fields.build(flags.FLAGS, ParetoConfig)
  if not options.runs:
    raise ValueError("--runs is required")
  if not options.out_dir:
    raise ValueError("--out_dir is required")
  runs = collect_runs(expand_run_args(options.runs))
  csv_path, png_path = write_pareto(runs, options.out_dir)
  print(csv_path)
  print(png_path)


def main() -> None:
  """The entry point: flags (or --help), then `run`, errors as one line."""
  app.run(
    PROG,
    run,
    summary=SUMMARY,
    groups=HELP_GROUPS,
    define_flags=_define_flags,
    errors=(ValueError, OSError),
  )


if __name__ == "__main__":
  main()
