"""Does IAAT help on my data? The clean-vs-robust frontier: `iaat-frontier`.

    iaat-frontier --experiment=quickstart \
        --pgd_at_eps=0.05,0.1,0.15,0.2,0.25,0.3 \
        --iaat="eps=0.3" --iaat="eps=0.3 gamma=0.1" \
        --seeds=0,1,2,3,4 --jobs=2 --out_dir=runs/frontier_digits

From one experiment (a shipped flagfile's name or your own flagfile), trains
uniform PGD-AT at every `--pgd_at_eps` radius and IAAT at every `--iaat`
setting (flag=value pairs over the experiment's, e.g. warmup radius `eps`,
`gamma`, `beta`, `eps_max`, `s_minus`, `method=iaat_cheap`), each for every
seed, `--jobs` at a time. Every run is an ordinary run directory under
OUT_DIR/runs/ (`iaat_tf.evaluate` and `iaat_tf.pareto` read them), trained by
`python -m iaat_tf.main` and judged by `python -m iaat_tf.evaluate`:
AutoAttack at the experiment's evaluation radius (`--aa_eps` to change it)
on the whole test split, and the robustness curve over radii (`--nocurve` to
skip it). Rerunning resumes: finished runs are not retrained, evaluated runs
not re-attacked. Writes to OUT_DIR:

  frontier.json   one object per setting (method, flags, seeds, clean and
                  AutoAttack mean and std, on_frontier, the gap to PGD-AT's
                  frontier at matched clean accuracy), the verdict, the runs
  frontier.md     the table (per seed too) and the verdict in words
  frontier.png    clean vs AutoAttack with error bars both ways and PGD-AT's
                  frontier drawn; each setting's radii beside it

The runs are cli/frontier_run.py, the analysis reports/frontier.py. Bad input is one line
`iaat_tf.frontier: error: ...` with exit 2 (cli/app.py).
"""

from iaat_tf import config as cfg
from iaat_tf.cli import app
from iaat_tf.cli.frontier_run import (FrontierError, FrontierOptions,
                                      run_frontier, settings_of)

PROG = "iaat_tf.frontier"
SUMMARY = """\
Trains PGD-AT at several radii and IAAT at a grid of settings, over seeds,
judges every run with AutoAttack, and writes the clean-vs-robust frontier
(frontier.json, frontier.md, frontier.png) with a verdict: is IAAT above
uniform PGD-AT's frontier on this data, and can the seeds tell?"""
HELP_GROUPS = (
    ("Experiment", ("experiment", "pgd_at_eps", "uniform_ramp", "iaat", "seeds",
                    "train_args", "out_dir", "jobs")),
    ("Evaluation", ("aa_eps", "aa_max_examples", "aa_apgd_iters", "aa_targets",
                    "aa_fab_iters", "aa_square_queries", "curve")),
    ("Output", ("debug",)),
)


# -- command line ----------------------------------------------------------------

def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("experiment", None, "The experiment: a shipped flagfile's "
                      "name (quickstart) or a path to your own flagfile.")
  flags.DEFINE_list("pgd_at_eps", [], "Uniform PGD-AT radii, e.g. 0.05,0.1,0.2 or 4/255,8/255.")
  flags.DEFINE_multi_string("iaat", [], "An adaptive setting: flag=value pairs "
                            "over the experiment's (repeat the flag for several), "
                            "e.g. --iaat='eps=0.3 gamma=0.1' or --iaat=method=iaat_cheap.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every setting.")
  flags.DEFINE_integer("jobs", 1, "Runs at a time.")
  flags.DEFINE_string("train_args", "", "Training flags for every run, e.g. "
                      "'--epochs=30 --warmup_epochs=5'.")
  flags.DEFINE_string("out_dir", None, "Output folder (runs/, logs/, frontier.*).")
  flags.DEFINE_string("aa_eps", None, "AutoAttack radius (default: the experiment's --eval_eps).")
  flags.DEFINE_integer("aa_max_examples", 0, "AutoAttack test examples (0: all).")
  flags.DEFINE_integer("aa_apgd_iters", 100, "AutoAttack APGD iterations.")
  flags.DEFINE_integer("aa_targets", 9, "AutoAttack APGD-T/FAB-T targets.")
  flags.DEFINE_integer("aa_fab_iters", 100, "AutoAttack FAB-T iterations.")
  flags.DEFINE_integer("aa_square_queries", 5000, "AutoAttack Square queries.")
  flags.DEFINE_bool("curve", True, "Also the robustness curve over radii (evaluate's suite).")
  flags.DEFINE_bool("uniform_ramp", True, "Ramp uniform PGD-AT's radius from 0 over "
                    "the experiment's --warmup_epochs, the start IAAT's warmup gives its "
                    "settings (--nouniform_ramp: the full radius from the first step).")


def options_from_flags(f) -> FrontierOptions:
  if not f.experiment:
    raise FrontierError("--experiment is required (e.g. --experiment=quickstart)")
  if not f.out_dir:
    raise FrontierError("--out_dir is required")
  if not f.pgd_at_eps:
    raise FrontierError("--pgd_at_eps needs at least one radius (the frontier is PGD-AT's)")
  try:
    seeds = tuple(int(s) for s in f.seeds)
  except ValueError:
    raise FrontierError(f"--seeds={','.join(f.seeds)} must be integers") from None
  if not seeds or len(set(seeds)) != len(seeds):
    raise FrontierError("--seeds must list distinct integers")
  if f.jobs < 1:
    raise FrontierError(f"--jobs={f.jobs} must be >= 1")
  eps = tuple(cfg.parse_radius("pgd_at_eps", e) for e in f.pgd_at_eps)
  aa_eps = None if f.aa_eps is None else cfg.parse_radius("aa_eps", f.aa_eps)
  options = FrontierOptions(
      experiment=f.experiment, out_dir=f.out_dir, pgd_at_eps=eps,
      iaat=tuple(f.iaat), seeds=seeds, jobs=f.jobs,
      train_args=tuple(f.train_args.split()), aa_eps=aa_eps,
      aa_max_examples=f.aa_max_examples, aa_apgd_iters=f.aa_apgd_iters,
      aa_targets=f.aa_targets, aa_fab_iters=f.aa_fab_iters,
      aa_square_queries=f.aa_square_queries, curve=f.curve,
      uniform_ramp=f.uniform_ramp)
  settings_of(options)  # Bad --iaat settings fail here, before any run.
  return options


def run(argv) -> None:
  """The command after its flags are parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise FrontierError(f"unexpected arguments {' '.join(argv[1:])!r}")
  run_frontier(options_from_flags(flags.FLAGS))


def main() -> None:
  """The entry point (`iaat-frontier`, `python -m iaat_tf.frontier`)."""
  app.run(PROG, run, summary=SUMMARY, groups=HELP_GROUPS,
          define_flags=_define_flags, errors=(ValueError, OSError))


if __name__ == "__main__":
  main()
