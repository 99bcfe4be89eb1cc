"""The evaluation command: `iaat-evaluate` (`python -m iaat_tf.evaluate`).

    iaat-evaluate --run_dir=runs/quickstart --eps_list=0,0.05,0.1,0.2,0.3
    iaat-evaluate --saved_model=DIR --dataset=cifar10 --data_dir=DIR --aa_eps=8/255

Flags -> `EvaluationConfig` (runs/evaluation_config.py) -> `runs.evaluate`
(runs/evaluation.py: the robustness suite and AutoAttack on a training run,
AutoAttack on a model this package did not train). What the flags alone
refuse (run-only flags given with a foreign model) is checked here; the
evaluation's own checks (`evaluation_config.check`) run before TensorFlow
loads. Bad input is one line `iaat_tf.evaluate: error: ...`, exit 2.
"""

from iaat_tf.cli import app
from iaat_tf.cli import flags as flag_fields
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.runs import evaluation_config
from iaat_tf.runs.evaluation_config import (
  HELP_GROUP_ORDER,
  RUN_ONLY,
  EvaluationConfig,
  EvaluationError,
)

PROG = "iaat_tf.evaluate"
SUMMARY = """\
Measures the robustness of a finished training run: clean accuracy and
PGD / APGD accuracy at every radius, with the per-example worst case. Writes
RUN_DIR/eval/ (or --out_dir) and adds the curve to RUN_DIR/results.json.
Any other TensorFlow classifier (--saved_model=DIR or --keras_model=FILE.keras,
with --dataset): AutoAttack at --aa_eps, written to --out_dir."""
HELP_GROUPS = flag_fields.help_groups(
  (EvaluationConfig, AutoAttackOptions), HELP_GROUP_ORDER, last=[("Output", "debug")]
)


def define_flags() -> None:
  flag_fields.define(EvaluationConfig)
  flag_fields.define(AutoAttackOptions)


def config_from_flags(f) -> EvaluationConfig:
  """The evaluation's config from parsed flags; what the flags given refuse."""
  options = flag_fields.build(
    f, EvaluationConfig, autoattack=flag_fields.build(f, AutoAttackOptions)
  )
  if not options.foreign:
    return options
  flag = "saved_model" if options.saved_model else "keras_model"
  if "suite" in options.attacks and f["attacks"].present:
    raise EvaluationError(
      "--attacks=suite (the PGD/APGD curve) reads a training run; a model from "
      "--saved_model/--keras_model gets --attacks=autoattack"
    )
  given = [f"--{name}" for name in RUN_ONLY if f[name].present]
  if given:
    hint = (
      " (AutoAttack's number of test images is --aa_max_examples)"
      if "--num_examples" in given
      else ""
    )
    names = " and ".join([", ".join(given[:-1]), given[-1]] if len(given) > 1 else given)
    raise EvaluationError(
      f"{names} {'apply' if len(given) > 1 else 'applies'} only to a training run's "
      f"evaluation, not to --{flag}{hint}"
    )
  return options


def checked(argv) -> EvaluationConfig:
  """Everything that can be checked without TensorFlow."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise EvaluationError(f"unexpected arguments {' '.join(argv[1:])!r}")
  return evaluation_config.check(config_from_flags(flags.FLAGS))


def run(argv) -> None:
  """The command after its flags are parsed (tests call it under flagsaver)."""
  from iaat_tf.runs import evaluation  # pylint: disable=g-import-not-at-top

  evaluation.execute(checked(argv))


def main() -> None:
  """The entry point: flags (or --help) and every check before TensorFlow
  loads, then the evaluation, errors as one line."""
  argv = app.start(PROG, summary=SUMMARY, groups=HELP_GROUPS, define_flags=define_flags)
  options = app.call(PROG, checked, argv)  # Fails fast, before TF loads.
  from iaat_tf.cli import tensorflow_start  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import evaluation  # pylint: disable=g-import-not-at-top

  tensorflow_start.import_tensorflow(debug=app.debug(), gpu_memory_growth=options.gpu_memory_growth)
  app.call(PROG, lambda _: evaluation.execute(options), argv)


if __name__ == "__main__":
  main()
