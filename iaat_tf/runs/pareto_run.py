"""The Pareto job: clean vs robust accuracy across run directories, what `iaat-pareto` does.

    from iaat_tf import runs
    runs.pareto(runs.ParetoConfig(runs="runs/*", out_dir="pareto"))

`pareto(options)` expands the run directories (comma-separated folders or
globs), reads each run's results.json (reports/pareto.py) and writes
pareto.csv and pareto.png to `out_dir`; it returns their paths. No
TensorFlow.
"""

import dataclasses
import glob
import os
from typing import Optional

from iaat_tf.options import Section, option

PARETO = "Pareto plot"


@dataclasses.dataclass(frozen=True)
class ParetoConfig(Section):
  """Which runs to compare and where the table and plot go."""

  runs: Optional[str] = option(
    None, "Comma-separated run directories or globs (e.g. 'runs/*').", group=PARETO
  )
  out_dir: Optional[str] = option(None, "Where to write pareto.csv/.png.", group=PARETO, path=True)


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


def pareto(options: ParetoConfig) -> tuple[str, str]:
  """(pareto.csv, pareto.png) written for the runs `options` names (ValueError
  for a missing or empty --runs, or no --out_dir)."""
  from iaat_tf.reports.pareto import collect_runs, write_pareto  # pylint: disable=g-import-not-at-top

  if not options.runs:
    raise ValueError("--runs is required")
  if not options.out_dir:
    raise ValueError("--out_dir is required")
  return write_pareto(collect_runs(expand_run_args(options.runs)), options.out_dir)
