"""Whether a path holds a model TensorFlow can open, told from its name and listing.

A SavedModel is a folder with `saved_model.pb`; a `.keras` file is a zip
archive holding `config.json`. `problem(flag, path)` says in one line what
is wrong with a `--saved_model` or `--keras_model` path (missing, a file
where a folder belongs, cut short, another format) before TensorFlow is
imported: the evaluation command checks it with the other flags, and
foreign.py before it asks Keras to load the file (whose own message for a
damaged archive is "File not found"). Imports no TensorFlow.
"""

import os
import zipfile
from typing import Optional


def problem(flag: str, path: str) -> Optional[str]:
  """What is wrong with `path` as --saved_model or --keras_model (`flag`), or None."""
  if not os.path.exists(path):
    return f"--{flag}={path} does not exist"
  if flag == "saved_model":
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
      return None
    what = "a file" if os.path.isfile(path) else "a folder without saved_model.pb"
    hint = " (a .keras file goes to --keras_model)" if path.endswith(".keras") else ""
    return f"--saved_model={path} is {what}, not a SavedModel{hint}"
  if os.path.isdir(path) or not path.endswith(".keras"):
    return f"--keras_model={path} is not a .keras file (a SavedModel folder goes to --saved_model)"
  try:
    with zipfile.ZipFile(path) as archive:
      names = set(archive.namelist())
  except (zipfile.BadZipFile, OSError):
    return (
      f"--keras_model={path} is not a readable .keras file: not a whole zip archive "
      "(cut short by a copy or a full disk, or saved in another format)"
    )
  if "config.json" not in names:
    return f"--keras_model={path} is a zip archive without a Keras model in it (no config.json)"
  return None
