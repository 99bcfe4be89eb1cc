"""Reading and writing a run directory, without TensorFlow.

One home for the files a run keeps (`config.json`, `results.json`,
`history.csv`) and for atomic writes, shared by training (`experiment.py`),
evaluation (`evaluate.py`), the Pareto tool and the plots. Every write goes to
a temporary file in the destination directory and is then renamed into
place, so a crash never leaves a half-written file; the result has the
normal mode of a new file (0644 under the usual umask 022).
"""

import csv
import dataclasses
import io
import json
import os
import tempfile
from typing import Mapping, Optional, Sequence

from iaat_tf.config import SECTIONS, Config, ConfigError

CONFIG = "config.json"
RESULTS = "results.json"
HISTORY = "history.csv"
RESUME_KEYS = ("data", "model", "method")  # What a resumed run must share.


class TrainingDiverged(RuntimeError):
  """Training produced a NaN or Inf loss; the run stops with one line."""


class RunDirError(ValueError):
  """A run directory that is missing, incomplete or malformed; one line."""


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_bytes(path: str, payload: bytes) -> str:
  """Writes `payload` to `path` atomically with mode 0666 & ~umask."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
    dir=directory, suffix=".tmp", prefix="." + os.path.basename(path) + "."
  )
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def atomic_write_text(path: str, text: str) -> str:
  return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str, payload: Mapping) -> str:
  """Writes JSON (sorted keys, indented) atomically."""
  return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> dict:
  """A JSON object from `path`; RunDirError (one line) when unreadable."""
  try:
    with open(path) as f:
      value = json.load(f)
  except FileNotFoundError:
    raise RunDirError(f"{path} does not exist") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise RunDirError(f"{path} is malformed: {e}") from None
  if not isinstance(value, dict):
    raise RunDirError(f"{path} is not a JSON object")
  return value


def write_csv(path: str, fields: Sequence[str], rows: Sequence[Mapping]) -> str:
  """Writes rows (dicts; missing fields empty) as CSV atomically."""
  buffer = io.StringIO()
  writer = csv.DictWriter(
    buffer, fieldnames=list(fields), restval="", extrasaction="ignore", lineterminator="\n"
  )
  writer.writeheader()
  writer.writerows(rows)
  return atomic_write_text(path, buffer.getvalue())


def check_run_dir(run_dir: str) -> str:
  """The path of `run_dir/config.json`; RunDirError if this is no run directory."""
  if not os.path.isdir(run_dir):
    raise RunDirError(f"--run_dir={run_dir} does not exist")
  path = os.path.join(run_dir, CONFIG)
  if not os.path.isfile(path):
    raise RunDirError(f"{run_dir}: no config.json (not an iaat_tf run directory)")
  return path


def read_config_dict(run_dir: str) -> dict:
  """The run's settings as saved in config.json (see config_from_dict)."""
  return read_json(check_run_dir(run_dir))


def read_results(run_dir: str) -> Optional[dict]:
  """results.json of a run, or None when the run has not finished."""
  path = os.path.join(run_dir, RESULTS)
  return read_json(path) if os.path.isfile(path) else None


def update_results(run_dir: str, **entries) -> Optional[dict]:
  """Adds/replaces top-level keys of results.json (if it exists), atomically.

  Other keys (history, other tools' entries) are kept as they are.
  """
  results = read_results(run_dir)
  if results is None:
    return None
  results.update(entries)
  write_json(os.path.join(run_dir, RESULTS), results)
  return results


def _number(text: str):
  try:
    value = float(text)
  except ValueError:
    return None
  return value


def read_history(path: str) -> list:
  """Rows of history.csv as dicts of floats (empty cells left out)."""
  if not os.path.isfile(path):
    return []
  with open(path, newline="") as f:
    rows = []
    for row in csv.DictReader(f):
      parsed = {k: _number(v) for k, v in row.items() if k and v not in (None, "")}
      rows.append({k: v for k, v in parsed.items() if v is not None})
  return rows


def history_columns(rows: Sequence[Mapping]) -> dict:
  """Rows -> {key: [value per epoch]} (None where an epoch lacks the key).

  `epoch` is 1-based, as the console prints it.
  """
  keys: list[str] = []
  for row in rows:
    keys.extend(k for k in row if k not in keys)
  if "epoch" in keys:
    keys.remove("epoch")
    keys.insert(0, "epoch")
  columns = {k: [row.get(k) for row in rows] for k in keys}
  if "epoch" in columns:
    columns["epoch"] = [None if e is None else int(e) for e in columns["epoch"]]
  return columns


# -- the state of a training run's output directory ---------------------------


def check_resume_compatible(config: Config) -> None:
  """ConfigError if output_dir holds a run of other data, model or method."""
  path = os.path.join(config.output_dir, CONFIG)
  if not os.path.exists(path):
    return
  try:
    saved = read_json(path)
  except RunDirError as e:
    raise ConfigError(
      f"--output_dir={config.output_dir}: {e}; use a new --output_dir or --overwrite"
    ) from None
  current = json.loads(json.dumps(config.to_dict()))
  # A setting added after the run was saved reads as its default, which is
  # how the older version ran (e.g. --augment_pad, --s_minus).
  saved = json.loads(
    json.dumps(config_from_dict({"output_dir": config.output_dir, **saved}).to_dict())
  )
  for settings in (saved, current):  # A preset's name; the probe_* values it set are compared.
    settings.get("method", {}).pop("alg2_preset", None)
  for key in RESUME_KEYS:
    if key in saved and saved[key] != current[key]:
      raise ConfigError(
        f"--output_dir={config.output_dir} holds a run with different "
        f"{key} settings; use a new --output_dir, the original flags, "
        "or --overwrite to delete it"
      )


def finished_results(config: Config) -> Optional[dict]:
  """results.json of a finished run in config.output_dir (None otherwise).

  Finished: results.json exists and covers at least `--epochs` epochs.
  """
  try:
    results = read_results(config.output_dir)
  except RunDirError:
    return None
  if results is None or results.get("epochs", 0) < config.train.epochs:
    return None
  return results


def finished_message(config: Config, results: Mapping) -> str:
  return (
    f"iaat_tf: {config.output_dir} holds a finished run "
    f"({results.get('epochs')} epochs, results.json); nothing to do. "
    "To train again, use a new --output_dir or pass --overwrite."
  )


def config_from_dict(values: dict) -> Config:
  """Rebuilds a Config from `Config.to_dict()` output: a run's config.json,
  including those of older versions (fields since removed are dropped, old
  spellings mapped)."""
  sections = SECTIONS
  kwargs = {}
  for key, value in values.items():
    key = "validation" if key == "eval" else key  # Its name before 0.6.0.
    if key in sections:
      cls = sections[key]
      known = {f.name for f in dataclasses.fields(cls)}
      section = {k: v for k, v in value.items() if k in known}
      for name in ("lr_boundaries", "synthetic_shape"):
        if name in section:
          section[name] = tuple(section[name])
      if key == "train" and isinstance(section.get("jit_compile"), bool):
        # Older runs stored --jit_compile as a boolean (true: the attack).
        section["jit_compile"] = "attack" if section["jit_compile"] else "none"
      kwargs[key] = cls(**section)
    elif key in {f.name for f in dataclasses.fields(Config)}:
      kwargs[key] = value
  return Config(**kwargs)
