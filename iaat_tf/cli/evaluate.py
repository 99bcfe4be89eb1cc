"""Robustness evaluation of a finished run: `iaat-evaluate` (`python -m iaat_tf.evaluate`).

    iaat-evaluate --run_dir=runs/quickstart \
        --eps_list=0,0.05,0.1,0.2,0.3 --source=saved_model

Loads the classifier from the run's exported SavedModel (default) or its
latest checkpoint, rebuilds the test split from the run's config.json, and
measures clean accuracy plus PGD (CE and CW-margin, with restarts) and
APGD-CE / APGD-DLR accuracy at every radius, with the per-example worst case
(robustness.py). Writes to `<run_dir>/eval/` (or `--out_dir`):

  robustness.json        the curve, settings and gradient-masking warnings
  robustness_curve.png   accuracy vs radius, one line per attack
  corruptions.json       CIFAR-10-C accuracy (with --corruptions, cifar10 runs)

and adds the curve to the run's results.json under "robustness" (read by
`iaat_tf.pareto`; the rest of results.json is kept). The run's own eval
radius is always on the curve.

With `--attacks=autoattack` (part of the CLI default `autoattack,suite`) it
also runs AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square; autoattack.py)
at the run's eval eps on the whole test split (imagenet2012: the first 5,000
validation images, as RobustBench; `--aa_max_examples`), writes
`autoattack.json` and `autoattack_examples.csv` (each example's id, label and
the attack that broke it) next to robustness.json, adds the JSON to
results.json under "autoattack", and marks the point on the robustness curve.
Both stream the split (host memory holds one batch per device, not the
split); `--strategy=mirrored` spreads every batch over the local GPUs.

A model this package did not train (any SavedModel with a signature from
images to logits, e.g. `model.export()`, or a `.keras` file) is evaluated
with AutoAttack on a dataset's test split:

    python -m iaat_tf.evaluate --saved_model=DIR --dataset=cifar10 \
        --data_dir=~/tensorflow_datasets --aa_eps=8/255 --out_dir=eval_mine

(`--keras_model=FILE.keras`; `--input_range=0,255`, `--input_mean`,
`--input_std` when the model expects them; `--norm=l2`). It writes the same
autoattack.json and autoattack_examples.csv to `--out_dir` (default
`eval_<model name>` in the current folder, a .keras file's name without
`.keras`); evaluation/foreign.py refuses models whose outputs are not
logits with one line, and a model at chance on the clean test images stops
before AutoAttack with exit 2 (`--allow_chance` goes on).

Run as a command, everything that needs only the flags and the files they
name is checked before TensorFlow loads (the flags, `--run_dir`, its
config.json and the radii in its threat model, the weights `--source`
names, a model file or folder, the data folder): `--help` and bad input
answer at once, bad input as one line `iaat_tf.evaluate: error: ...` with
exit 2. The evaluation itself is cli/evaluation_run.py (TensorFlow,
imported once the input is checked); this command never imports the
training stack (run directory I/O is in run_io.py).
"""

import dataclasses

from iaat_tf import run_io
from iaat_tf.cli import app, evaluation_options
from iaat_tf.cli.evaluation_options import EvaluationConfig, EvaluationError

PROG = "iaat_tf.evaluate"


def _checked_options(argv) -> EvaluationConfig:
  """Everything that can be checked without TensorFlow (flags, --run_dir)."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise EvaluationError(f"unexpected arguments {' '.join(argv[1:])!r}")
  options = evaluation_options.config_from_flags(flags.FLAGS)
  if options.foreign:
    return dataclasses.replace(options, attacks=("autoattack",), out_dir=options.foreign_out_dir)
  run_dir = options.run_dir or ""
  try:
    run = run_io.config_from_dict(run_io.read_config_dict(run_dir))
  except run_io.RunDirError as e:
    raise EvaluationError(str(e)) from None
  evaluation_options.check_run(options, run, run_dir)
  return options


def run(argv) -> None:
  """The command after its flags are parsed."""
  options = _checked_options(argv)
  from iaat_tf.cli import evaluation_run  # pylint: disable=g-import-not-at-top

  if options.foreign:
    evaluation_run.autoattack_model(options)
  else:
    evaluation_run.evaluate_selected(options.run_dir or "", options)


def main() -> None:
  """The entry point: flags (or --help) and every check before TensorFlow
  loads, then `run`, errors as one line."""
  argv = app.start(
    PROG,
    summary=evaluation_options.SUMMARY,
    groups=evaluation_options.HELP_GROUPS,
    define_flags=evaluation_options.define_flags,
  )
  app.call(PROG, _checked_options, argv)  # Fails fast, before TF loads.
  from absl import flags  # pylint: disable=g-import-not-at-top

  app.import_tensorflow(debug=app.debug(), gpu_memory_growth=flags.FLAGS.gpu_memory_growth)
  app.call(PROG, run, argv)


if __name__ == "__main__":
  main()
