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

from iaat_tf.cli import app
from iaat_tf.cli import flags as flag_fields
from iaat_tf.cli.frontier_run import (
  DEVICES,
  EVALUATION,
  EXPERIMENT,
  FrontierConfig,
  FrontierError,
  run_frontier,
  settings_of,
)
from iaat_tf.evaluation.settings import AutoAttackOptions

PROG = "iaat_tf.frontier"
SUMMARY = """\
Trains PGD-AT at several radii and IAAT at a grid of settings, over seeds,
judges every run with AutoAttack, and writes the clean-vs-robust frontier
(frontier.json, frontier.md, frontier.png) with a verdict: is IAAT above
uniform PGD-AT's frontier on this data, and can the seeds tell?"""
HELP_GROUPS = flag_fields.help_groups(
  (FrontierConfig, AutoAttackOptions),
  (EXPERIMENT, EVALUATION, "AutoAttack", DEVICES, "Output"),
  last=[("Output", "debug")],
)


# -- command line ----------------------------------------------------------------


def _define_flags():
  flag_fields.define(FrontierConfig)
  flag_fields.define(AutoAttackOptions)


def config_from_flags(f) -> FrontierConfig:
  """The frontier's config from parsed flags, checked before any run."""
  auto = [s.strip() for s in f.seeds] == ["auto"]
  options = flag_fields.build(
    f,
    FrontierConfig,
    # --seeds=auto: the sequential design picks them (reports/sequential.py).
    parse=lambda field, name: () if auto and name == "seeds" else flag_fields.value(f, field, name),
    auto_seeds=auto,
    autoattack=flag_fields.build(f, AutoAttackOptions),
  )
  if not options.experiment:
    raise FrontierError("--experiment is required (e.g. --experiment=quickstart)")
  if not options.out_dir:
    raise FrontierError("--out_dir is required")
  if not options.pgd_at_eps:
    raise FrontierError("--pgd_at_eps needs at least one radius (the frontier is PGD-AT's)")
  settings_of(options)  # Bad --iaat settings fail here, before any run.
  return options


def run(argv) -> None:
  """The command after its flags are parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise FrontierError(f"unexpected arguments {' '.join(argv[1:])!r}")
  run_frontier(config_from_flags(flags.FLAGS))


def main() -> None:
  """The entry point (`iaat-frontier`, `python -m iaat_tf.frontier`)."""
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
