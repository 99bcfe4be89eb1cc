"""The command line: flags -> a config -> a run of `iaat_tf.runs`, errors as one line.

* `train.py`, `evaluate.py`, `pareto.py`, `frontier.py`: the commands, each
  with `main()` (the console scripts `iaat-train`, ... call it; `python -m
  iaat_tf.main|evaluate|pareto|frontier` are shims calling it), its flags
  defined by `define_flags()` from its config's `option()` fields, and
  `run(argv)`, the command after its flags are parsed.
* `flags.py`: absl flags generated from `options.option` fields (every
  command's), and the typed configs built back from them.
* `flags_config.py`: the training flags and `config_from_flags()`, the one
  place they become a typed `Config`.
* `app.py`: one-line errors, parsing, the entry point every command shares;
  `help_text.py`: grouped `--help`, before TensorFlow is imported;
  `tensorflow_start.py`: TensorFlow imported quietly once the input is checked.

What a run does lives in `iaat_tf.runs`; nothing below this package imports it.
"""
