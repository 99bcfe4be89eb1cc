"""Reading and writing a run directory, without TensorFlow.

One home for the files a run keeps (`config.json`, `results.json`,
`history.csv`) and for atomic writes, shared by training (`runs/training.py`),
evaluation (`evaluate.py`), the Pareto tool and the plots; and for what a
run's result depends on (its fingerprint: every setting but
`NOT_IN_RESULT`), which a resume or a rerun must match
(`check_resume_compatible`; config.json's "changes" record the asked-for
ones). Every write goes to
a temporary file in the destination directory and is then renamed into
place, so a crash never leaves a half-written file; the result has the
normal mode of a new file (0644 under the usual umask 022).
"""

import csv
import dataclasses
import glob
import io
import json
import os
import re
import tempfile
from typing import Mapping, Optional, Sequence

from iaat_tf.config import SECTIONS, Config, ConfigError

CONFIG = "config.json"
RESULTS = "results.json"
HISTORY = "history.csv"
# The settings that change no number of a run (config.json keys): where it
# writes and reads, what it prints, how its files and devices are managed.
# Every other setting is part of the run's fingerprint: a resume, or a rerun
# on a finished run, must match it (`check_resume_compatible`).
NOT_IN_RESULT = (
  "output_dir",
  "overwrite",
  "export",
  "data.data_dir",
  "data.manual_dir",
  "data.download",
  "train.verbose",
  "train.keep_checkpoints",
  "train.gpu_memory_growth",
  "train.steps_per_execution",
  "method.alg2_preset",  # A preset's name; the probe_* values it set are compared.
)
# The settings a resume may change, asked for: config.json records each
# change under "changes", with the epoch it was made at.
RESUMABLE = ("train.epochs",)


class TrainingDiverged(RuntimeError):
  """Training produced a NaN or Inf loss; the run stops with one line."""


class RunDirError(ValueError):
  """A run directory that is missing, incomplete or malformed; one line."""


class SettingsDiffer(ConfigError):
  """A run directory holding a run made with other settings (one line);
  `differences`: '--flag (old there, new now)' for each setting."""

  def __init__(self, message: str, differences: Sequence[str] = ()):
    super().__init__(message)
    self.differences = list(differences)


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


def _flat(values: Mapping, prefix: str = "") -> dict:
  """{"train": {"epochs": 3}} -> {"train.epochs": 3}, as JSON values."""
  out = {}
  for key, value in json.loads(json.dumps(values)).items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def _flag_names() -> dict:
  """config.json key -> its flag (None: set from other flags, e.g. data.seed)."""
  names: dict = {}
  for prefix, cls in (("", Config), *((f"{k}.", c) for k, c in SECTIONS.items())):
    for f in dataclasses.fields(cls):
      if "help" in f.metadata:
        flag = f.metadata["flag"]
        names[prefix + f.name] = f.name if flag == "" else flag
  return names


def _words(value) -> str:
  if isinstance(value, float):
    return f"{value:.6g}"
  if isinstance(value, list):
    return ",".join(_words(v) for v in value) or "(none)"
  return "(none)" if value is None else str(value)


def changed(label: str, there, now) -> str:
  """'--flag (old there, new now)': how every refusal of a reused result
  names a setting that differs (JSON values; None: the result lacks it)."""
  return f"{label} ({_words(there)} there, {_words(now)} now)"


def differences(saved: Mapping, current: Mapping) -> list:
  """'--flag (old there, new now)' for every setting of the fingerprint
  (all but NOT_IN_RESULT and RESUMABLE) that differs between two
  config.json payloads."""
  old, new = _flat(saved), _flat(current)
  names, out = _flag_names(), dict[str, str]()
  for key in sorted(set(old) | set(new)):
    if key in NOT_IN_RESULT + RESUMABLE or old.get(key) == new.get(key):
      continue
    flag = names.get(key) or ""
    label = f"--{flag}" if flag else key  # A derived field: its key, if alone.
    out.setdefault(label, changed(label, old.get(key), new.get(key)))
  named = [v for k, v in out.items() if k.startswith("--")]
  return named or list(out.values())


def trained_epochs(output_dir: str) -> int:
  """The epochs a run directory holds: its newest checkpoint's number
  (callbacks.CheckpointCallback numbers them by finished epochs) or its
  results.json's, whichever is larger (0: none)."""
  found = [0]
  for path in glob.glob(os.path.join(output_dir, "checkpoints", "ckpt-*.index")):
    match = re.search(r"ckpt-(\d+)\.index$", path)
    found += [int(match.group(1))] if match else []
  try:
    found.append(int((read_results(output_dir) or {}).get("epochs", 0)))
  except (RunDirError, TypeError, ValueError):
    pass
  return max(found)


def _saved_settings(config: Config) -> Optional[dict]:
  """The settings in output_dir/config.json as `config.to_dict()` writes them
  now (settings added since read as their defaults); None without one."""
  path = os.path.join(config.output_dir, CONFIG)
  if not os.path.exists(path):
    return None
  try:
    saved = read_json(path)
  except RunDirError as e:
    raise ConfigError(
      f"--output_dir={config.output_dir}: {e}; use a new --output_dir or --overwrite"
    ) from None
  # A setting added after the run was saved reads as its default, which is
  # how the older version ran (e.g. --augment_pad, --s_minus).
  return config_from_dict({"output_dir": config.output_dir, **saved}).to_dict()


def check_resume_compatible(config: Config) -> list:
  """The changes a resume of output_dir's run makes, asked for (RESUMABLE:
  more --epochs), as [{"setting", "was", "now"}]; [] when none.

  SettingsDiffer (one line naming every setting that differs) if the run
  there was made with other settings that change its result, or trained
  more epochs than `--epochs`.
  """
  saved = _saved_settings(config)
  if saved is None:
    return []
  current = config.to_dict()
  where = f"--output_dir={config.output_dir}"
  differ = differences(saved, current)
  if differ:
    raise SettingsDiffer(
      f"{where} holds a run made with other settings: {', '.join(differ)}; rerun with its "
      "settings, use a new --output_dir, or pass --overwrite to delete it",
      differ,
    )
  trained = trained_epochs(config.output_dir)
  if config.train.epochs < trained:
    raise SettingsDiffer(
      f"{where} holds a run that trained {trained} epochs, more than --epochs="
      f"{config.train.epochs}; pass --epochs={trained} or more, a new --output_dir, "
      "or --overwrite to delete it",
      [f"--epochs ({trained} trained there, {config.train.epochs} now)"],
    )
  old, new = _flat(saved), _flat(current)
  names = _flag_names()
  return [
    {"setting": f"--{names[key]}", "was": old.get(key), "now": new.get(key)}
    for key in RESUMABLE
    if old.get(key) != new.get(key)
  ]


def config_record(config: Config, changes: Sequence[Mapping], provenance: Mapping) -> dict:
  """config.json's payload: the settings, which code ran them, and every
  change a resume made ("changes": each with the epoch it was made at, kept
  across resumes), so config.json always says how the run was made."""
  path = os.path.join(config.output_dir, CONFIG)
  kept: list = []
  if not config.overwrite and os.path.isfile(path):
    try:
      kept = list(read_json(path).get("changes") or [])
    except RunDirError:
      kept = []
  at = trained_epochs(config.output_dir) if changes else 0
  return {
    **config.to_dict(),
    # Which code ran it (read by no one when resuming: config_from_dict skips it).
    "provenance": dict(provenance),
    "changes": kept + [{**c, "at_epoch": at} for c in changes],
  }


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
