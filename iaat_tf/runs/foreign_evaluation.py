"""AutoAttack on a model this package did not train (TensorFlow): a SavedModel or `.keras` file.

`autoattack_model(options)` loads the model as a logits function
(evaluation/foreign.py), judges it on clean images first (a model at chance
most likely expects other inputs: stopped before AutoAttack's long run,
unless `allow_chance`), then runs AutoAttack standard on the dataset's test
split and writes autoattack.json (with the input convention the model was
fed) and autoattack_examples.csv. Called through `runs.evaluate` once the
evaluation is checked (runs/evaluation_config.py).
"""

import typing
from typing import Callable

import numpy as np

from iaat_tf import config as cfg
from iaat_tf import data
from iaat_tf.runs.evaluation_config import EvaluationConfig, EvaluationError, autoattack_options
from iaat_tf.runs.run_evaluation import (
  log_autoattack_summary,
  run_autoattack,
  strategy_for,
  write_autoattack,
)


def autoattack_model(options: EvaluationConfig, log: Callable[[str], None] = print) -> dict:
  """AutoAttack on a model this package did not train (evaluation/foreign.py).

  The model is `options.saved_model` or `options.keras_model`, attacked on
  `options.dataset`'s test split at `options.autoattack.eps` (required: there is no
  run to take it from) in `options.norm` (default L-inf). A clean pass over
  the examples comes first: at chance, the model most likely expects other
  inputs, and EvaluationError stops before AutoAttack unless
  `options.allow_chance`. Writes autoattack.json (with the input convention
  the model was fed, and the chance warning) and autoattack_examples.csv to
  `options.foreign_out_dir`; returns the JSON payload.
  """
  from iaat_tf.evaluation import foreign  # pylint: disable=g-import-not-at-top

  aa = autoattack_options(options)
  strategy = strategy_for(options)  # Before any op: it may split the CPU.
  data_cfg = cfg.DataConfig(
    dataset=typing.cast(cfg.Dataset, options.dataset),  # One of FOREIGN_DATASETS.
    data_dir=options.data_dir,
    npz_path=options.npz_path,
    image_size=options.image_size,
    batch_size=1,
    max_eval_examples=aa.max_examples or 0,
    eval_batch_size=aa.batch_size,
  )
  try:
    datasets = data.load_datasets(data_cfg)
  except data.DataError as e:
    raise EvaluationError(str(e)) from None
  channels = datasets.info.image_shape[-1]
  for name in ("input_mean", "input_std"):
    values = getattr(options, name)
    if values is not None and len(values) not in (1, channels):
      raise EvaluationError(
        f"--{name} has {len(values)} values; the images have {channels} channel(s)"
      )
  source = "saved_model" if options.saved_model else "keras_model"
  path = options.saved_model or options.keras_model or ""
  what = f"--{source}={path}"
  with strategy.scope():
    logits_fn = foreign.load_logits_fn(
      saved_model=options.saved_model,
      keras_model=options.keras_model,
      input_range=options.input_range,
      mean=options.input_mean,
      std=options.input_std,
      signature=options.signature,
    )
  first_images, _ = next(iter(datasets.test))
  images = first_images["image"] if isinstance(first_images, dict) else first_images
  foreign.check_logits(logits_fn, np.asarray(images)[:64], datasets.info.num_classes, what)
  convention = input_convention(options)
  log(
    f"evaluate: {what}: AutoAttack only (the PGD/APGD suite reads a training run) "
    f"at {aa.norm} eps {aa.eps:.4g}; the model gets {convention}"
  )
  # Before AutoAttack's long run: a model at chance on clean images was
  # most likely given inputs it does not expect.
  clean, labels = foreign.clean_accuracy(logits_fn, datasets.test)
  warning = foreign.chance_warning(clean, labels, convention)
  if warning and not options.allow_chance:
    raise EvaluationError(
      f"{what}: {warning}; stopped before AutoAttack (--allow_chance runs it anyway)"
    )
  if warning:
    log(f"evaluate: WARNING: {warning} (--allow_chance: AutoAttack runs anyway)")
  report = run_autoattack(logits_fn, datasets, aa, strategy, datasets.info.name, log, what)
  warning = foreign.chance_warning(report.clean_accuracy, report.labels, convention)
  payload = write_autoattack(
    report,
    options.foreign_out_dir,
    log,
    model=path,
    source=source,
    input={
      "range": list(options.input_range),
      "mean": None if options.input_mean is None else list(options.input_mean),
      "std": None if options.input_std is None else list(options.input_std),
      "convention": convention,
    },
    input_warning=warning,
  )
  log_autoattack_summary(report, log)
  if warning:
    log(f"evaluate: WARNING: {warning}")
  log(f"evaluate: wrote {options.foreign_out_dir}")
  return payload


def input_convention(options: EvaluationConfig) -> str:
  """What a foreign model is fed, in words: images in [0, 1] mapped to
  --input_range, then --input_mean / --input_std."""
  low, high = options.input_range
  words = f"pixels in [{low:g}, {high:g}]"
  if options.input_mean is not None:
    words += f" minus mean {','.join(f'{v:g}' for v in options.input_mean)}"
  if options.input_std is not None:
    words += f" divided by std {','.join(f'{v:g}' for v in options.input_std)}"
  return words
