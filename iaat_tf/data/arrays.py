"""NumPy sources, validated: scikit-learn's digits and a user's .npz file.

Also the checks every source shares: `DataError` (a one-line user-facing
problem), the class count (`check_labels`) and the fixed held-out split
(`holdout_split`, independent of --seed).
"""

import os
import zipfile

import numpy as np

from iaat_tf.config import DataConfig

_SPLIT_SEED = 20191018  # Fixed: the held-out split never depends on --seed.


class DataError(ValueError):
  """A user-facing data problem (missing directory, bad file); one line."""


def _declared_classes(config: DataConfig, dataset_classes: int, what: str) -> int:
  """The dataset's class count, checked against --num_classes if given."""
  if config.num_classes and config.num_classes != dataset_classes:
    raise DataError(
      f"--num_classes={config.num_classes} disagrees with the {dataset_classes} classes of {what}"
    )
  return int(dataset_classes)


def check_labels(labels: np.ndarray, num_classes: int, name: str, where: str) -> None:
  """DataError if a label is outside [0, num_classes)."""
  bad = labels[(labels < 0) | (labels >= num_classes)]
  if bad.size:
    raise DataError(
      f"{where}: {name} holds label {int(bad[0])} outside the "
      f"{num_classes} classes 0..{num_classes - 1} ({bad.size} "
      f"such labels; set num_classes in the npz or --num_classes "
      f"if the data has more classes)"
    )


def _array_classes(
  config: DataConfig, npz_classes, y: np.ndarray, y_test: np.ndarray, where: str
) -> int:
  """Declared (npz `num_classes`, --num_classes) or inferred class count.

  Inferred (max label + 1) only if every class id below it occurs in the
  training labels: a stray large label is an error, not a bigger model.
  """
  declared = None
  if npz_classes is not None:
    declared = _declared_classes(config, npz_classes, where)
  elif config.num_classes:
    declared = config.num_classes
  if declared is None:
    inferred = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    present = np.unique(y)
    if len(present) != inferred:
      missing = sorted(set(range(inferred)) - set(present.tolist()))
      raise DataError(
        f"{where}: labels go up to {inferred - 1} but the training labels use "
        f"only {len(present)} distinct ids (e.g. no {missing[0]}); put "
        f"num_classes in the npz or pass --num_classes"
      )
    declared = inferred
  if declared < 2:
    raise DataError(f"{where}: {declared} class(es); need at least 2")
  check_labels(y, declared, "y", where)
  check_labels(y_test, declared, "y_test", where)
  return declared


# -- array sources -------------------------------------------------------------


def holdout_split(num_examples: int, fraction: float):
  """A fixed (train, test) index split of range(num_examples)."""
  order = np.random.RandomState(_SPLIT_SEED).permutation(num_examples)
  num_test = max(1, int(round(num_examples * fraction)))
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def load_digits_arrays(holdout_fraction: float = 0.2):
  """scikit-learn's digits as ([N,8,8,1] float32 in [0,1], int64 labels)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  y = digits.target.astype(np.int64)
  train, test = holdout_split(len(y), holdout_fraction)
  return (x[train], y[train]), (x[test], y[test]), 10


def _images_to_unit_range(x: np.ndarray, name: str, path: str) -> np.ndarray:
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise DataError(
      f"{path}: {name} must have shape [N, H, W] or [N, H, W, C] "
      f"with C in (1, 3), got {list(x.shape)}"
    )
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise DataError(f"{path}: {name} must be uint8 or float, got {x.dtype}")
  x = x.astype(np.float32)
  if x.size:
    nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    if nan or inf:
      raise DataError(
        f"{path}: {name} holds {nan} NaN and {inf} Inf values; "
        f"images must be finite, uint8 (0..255) or float in [0, 1]"
      )
    if x.min() < 0.0 or x.max() > 1.0:
      raise DataError(
        f"{path}: {name} must be uint8 (0..255) or float in [0, 1]; "
        f"got values in [{x.min():g}, {x.max():g}]"
      )
  return x


def _labels(y: np.ndarray, n: int, name: str, path: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != n:
    raise DataError(
      f"{path}: {name} must have shape [{n}] (one label per image), got {list(y.shape)}"
    )
  if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
    raise DataError(f"{path}: {name} must hold non-negative integer class ids")
  return y.astype(np.int64)


def _npz_num_classes(arrays: dict, path: str):
  if "num_classes" not in arrays:
    return None
  value = np.asarray(arrays["num_classes"])
  if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
    raise DataError(
      f"{path}: num_classes must be one integer, got {value.dtype} of shape {list(value.shape)}"
    )
  return int(value.reshape(()))


def load_npz_arrays(path: str, holdout_fraction: float = 0.2, config: DataConfig = DataConfig()):
  """Reads and validates a user `.npz` (x, y[, x_test, y_test, num_classes])."""
  if not os.path.isfile(path):
    raise DataError(f"--npz_path={path} does not exist")
  if not zipfile.is_zipfile(path):  # np.load would blame "pickled data".
    raise DataError(
      f"--npz_path={path} is not a readable .npz archive (not a "
      "zip file; save one with numpy.savez)"
    )
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # zipfile/pickle/format errors: all user input.
    raise DataError(f"--npz_path={path} is not a readable .npz file ({e})") from e
  for key in ("x", "y"):
    if key not in arrays:
      raise DataError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
  x = _images_to_unit_range(arrays["x"], "x", path)
  y = _labels(arrays["y"], len(x), "y", path)
  if ("x_test" in arrays) != ("y_test" in arrays):
    raise DataError(f"{path}: give both x_test and y_test, or neither")
  if "x_test" in arrays:
    x_test = _images_to_unit_range(arrays["x_test"], "x_test", path)
    y_test = _labels(arrays["y_test"], len(x_test), "y_test", path)
    if x_test.shape[1:] != x.shape[1:]:
      raise DataError(
        f"{path}: x_test images {list(x_test.shape[1:])} differ from x images {list(x.shape[1:])}"
      )
  else:
    if len(x) < 2:
      raise DataError(f"{path}: need at least 2 examples to hold out a test split")
    train, test = holdout_split(len(x), holdout_fraction)
    x, y, x_test, y_test = x[train], y[train], x[test], y[test]
  num_classes = _array_classes(config, _npz_num_classes(arrays, path), y, y_test, path)
  return (x, y), (x_test, y_test), num_classes
