"""The frontier command: `iaat-frontier` (`python -m iaat_tf.frontier`).

    iaat-frontier --experiment=quickstart --pgd_at_eps=0.1,0.2,0.3 \
        --iaat="eps=0.3" --iaat="eps=0.3 gamma=0.1" --seeds=0,1,2 --out_dir=runs/f

Flags -> `FrontierConfig` (runs/frontier_config.py) -> `runs.frontier`
(runs/frontier_run.py: PGD-AT at every radius and every adaptive setting,
over seeds, each run judged by AutoAttack; frontier.json, .md, .png with the
verdict; docs/frontier.md). Bad input is one line `iaat_tf.frontier: error:
...` with exit 2 (cli/app.py), before any run starts.
"""

from iaat_tf.cli import app
from iaat_tf.cli import flags as flag_fields
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.runs.frontier_config import (
  DEVICES,
  EVALUATION,
  EXPERIMENT,
  FrontierConfig,
  FrontierError,
)

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


def define_flags() -> None:
  flag_fields.define(FrontierConfig)
  flag_fields.define(AutoAttackOptions)


def config_from_flags(f) -> FrontierConfig:
  """The frontier's config from parsed flags (--seeds=auto: the sequential
  design picks them, reports/sequential.py); `runs.frontier` checks it
  before any run starts."""
  auto = [s.strip() for s in f.seeds] == ["auto"]
  options = flag_fields.build(
    f,
    FrontierConfig,
    parse=lambda field, name: () if auto and name == "seeds" else flag_fields.value(f, field, name),
    auto_seeds=auto,
    autoattack=flag_fields.build(f, AutoAttackOptions),
  )
  return options


def run(argv) -> None:
  """The command after its flags are parsed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import frontier_run  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise FrontierError(f"unexpected arguments {' '.join(argv[1:])!r}")
  frontier_run.frontier(config_from_flags(flags.FLAGS))


def main() -> None:
  """The entry point (`iaat-frontier`, `python -m iaat_tf.frontier`)."""
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
