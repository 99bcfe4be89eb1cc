"""What a user installs is what we test: pyproject.toml, flagfiles by name, scripts.

pyproject.toml must list every subpackage (a wheel built from
`packages = ["iaat_tf"]` held 7 of 49 modules), ship flags/ as
iaat_tf/flagfiles/, and name a console script for every command. The
wheel itself is built, installed in a fresh venv and run from an empty
folder by .ci/wheel_check (CI).
"""

import os
import subprocess
import sys

import pytest

import iaat_tf
from iaat_tf.runs import flagfiles

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pyproject():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_every_subpackage_and_the_flagfiles_are_packaged():
  setup = _pyproject()["tool"]["setuptools"]
  tree = {
    os.path.relpath(root, REPO).replace(os.sep, ".")
    for root, _, files in os.walk(os.path.join(REPO, "iaat_tf"))
    if "__init__.py" in files
  }
  assert set(setup["packages"]) == tree | {"iaat_tf.flagfiles"}
  assert setup["package-dir"] == {"iaat_tf.flagfiles": "flags"}
  assert setup["package-data"] == {"iaat_tf.flagfiles": ["*.flags"]}


def test_one_version_number():
  project = _pyproject()
  assert project["project"]["dynamic"] == ["version"]
  attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
  assert attr == "iaat_tf._version.__version__"
  with open(os.path.join(REPO, "CHANGELOG.md")) as f:
    assert f"## {iaat_tf.__version__}" in f.read()


@pytest.mark.parametrize(
  "script,module",
  [
    ("iaat-train", "iaat_tf.main"),
    ("iaat-evaluate", "iaat_tf.evaluate"),
    ("iaat-pareto", "iaat_tf.pareto"),
    ("iaat-frontier", "iaat_tf.frontier"),
  ],
)
def test_console_scripts_run_their_command(script, module, tmp_path):
  target = _pyproject()["project"]["scripts"][script]
  module_name, function = target.split(":")
  code = f"import sys; sys.argv = [{script!r}, '--help']; import {module_name} as m; m.{function}()"
  result = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    cwd=tmp_path,
    timeout=120,
    env={**os.environ, "PYTHONPATH": REPO},
  )
  assert result.returncode == 0, result.stderr
  # The usage line names the command as it was run (its console script).
  assert result.stdout.startswith(f"usage: {script} [--flag=value ...]"), result.stdout[:200]
  bad = subprocess.run(
    [sys.executable, "-c", code.replace("'--help'", "'--no_such_flag'")],
    capture_output=True,
    text=True,
    cwd=tmp_path,
    timeout=120,
    env={**os.environ, "PYTHONPATH": REPO},
  )
  assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_flagfiles_by_name_from_any_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # No flags/ here.
  shipped = sorted(f[:-6] for f in os.listdir(os.path.join(REPO, "flags")))
  assert flagfiles.names() == shipped
  for spelling in ("quickstart", "quickstart.flags", "flags/quickstart.flags"):
    assert iaat_tf.flagfile(spelling) == flagfiles.flagfile("quickstart")
  # A nested flagfile (--flagfile=flags/quickstart.flags inside) resolves
  # too, and its own lines come after the included file's (they override).
  args = flagfiles.expand(["--flagfile=quickstart_pgd_at", "--epochs=2"])
  assert args.index("--method=iaat") < args.index("--method=pgd_at")
  assert args[-1] == "--epochs=2" and not any(a.startswith("#") for a in args)
  # Your own file, by path, still works, and can include a shipped one.
  own = tmp_path / "mine.flags"
  own.write_text("# mine\n--flagfile=quickstart\n\n--eps=0.1\n")
  args = flagfiles.expand(["--flagfile", str(own)])
  assert args[-1] == "--eps=0.1" and "--dataset=digits" in args
  with pytest.raises(flagfiles.FlagfileError, match="shipped: .*quickstart"):
    flagfiles.expand(["--flagfile=nonesuch"])
  loop = tmp_path / "loop.flags"
  loop.write_text(f"--flagfile={loop}\n")
  with pytest.raises(flagfiles.FlagfileError, match="nested"):
    flagfiles.expand([f"--flagfile={loop}"])
