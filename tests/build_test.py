"""BUILD lists every module, test and script of the repository."""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_text():
  with open(os.path.join(REPO, "BUILD")) as f:
    return f.read()


def _listed_files(text):
  return set(re.findall(r'"((?:iaat_tf|tests|bench)/[\w/]+\.py)"', text))


def test_every_python_file_is_in_build():
  listed = _listed_files(_build_text())
  files = {os.path.relpath(p, REPO) for pattern in
           ("iaat_tf/**/*.py", "tests/*.py", "bench/*.py")
           for p in glob.glob(os.path.join(REPO, pattern), recursive=True)}
  # Bazel's runfiles add empty tests/__init__.py and bench/__init__.py.
  files = {f for f in files
           if not (f.endswith("__init__.py") and not f.startswith("iaat_tf/"))}
  missing = sorted(files - listed)
  assert not missing, f"add to BUILD: {missing}"
  stale = sorted(listed - files)
  assert not stale, f"BUILD names missing files: {stale}"


def test_every_test_file_has_a_py_test():
  text = _build_text()
  for path in glob.glob(os.path.join(REPO, "tests", "*_test.py")):
    name = os.path.basename(path)[:-3]
    assert f'name = "{name}"' in text, f"no py_test named {name}"
