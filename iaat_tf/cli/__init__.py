"""The command-line layer: the four commands, flags to a `Config`, and their plumbing.

* `train.py`, `evaluate.py`, `pareto.py`, `frontier.py`: the commands, each
  with a `main()` (the console scripts `iaat-train`, ... call it; `python -m
  iaat_tf.main|evaluate|pareto|frontier` are shims calling it) and a
  `run(argv)`, the command after its flags are parsed.

* `app.py`: what every entry point shares (one-line errors, grouped
  `--help` before TensorFlow is imported, a quiet start).
* `flags_config.py`: the training flags and `config_from_flags()`, the one
  place FLAGS become a typed `Config`.
* `flags.py`: absl flags generated from `options.option` fields (every
  command's), and the typed sections built back from them.
* `evaluation_options.py`: `EvaluationConfig`, the evaluation command's
  options and their checks.
* `flagfiles.py`: `--flagfile=NAME` for the shipped flagfiles.
* `experiment.py`: one training run (set-up, fit, final evaluation, export).
* `evaluation_run.py`: judging a run directory or a foreign model.
* `frontier_run.py`: the frontier's runs (train, judge, resume, analyse).
* `executors.py`: where runs execute (local processes, or Ray tasks).
* `progress.py`: the evaluation's progress line (the training callbacks are
  `training/callbacks.py`).

Library code never imports this package.
"""
