"""BUILD is exactly what tools/make_build.py generates from the import graph."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import make_build  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def test_build_equals_the_generators_output():
  with open(os.path.join(REPO, "BUILD")) as f:
    assert f.read() == make_build.generate(), "BUILD is stale: run python tools/make_build.py"


def test_every_python_file_has_a_target():
  text = make_build.generate()
  for path in make_build._python_files():  # pylint: disable=protected-access
    if path.endswith("_test.py") and path.startswith("tests/"):
      name = path[len("tests/") : -len("_test.py")].replace("/", "_")  # ROOM_X
      assert f'name = "{name}_test"' in text or f'name = "{name}_slow_test"' in text, path
    else:
      assert f'"{path}"' in text, path


def test_dependencies_follow_imports():
  text = make_build.generate()
  # The trainer imports the recipe; the evaluation command its job and config.
  trainer = text[text.index('name = "training_trainer"') :]
  trainer = trainer[: trainer.index(")\n")]
  assert '":training_recipe"' in trainer
  evaluate = text[text.index('name = "cli_evaluate"') :]
  evaluate = evaluate[: evaluate.index(")\n")]
  assert '":runs_evaluation"' in evaluate and '":runs_evaluation_config"' in evaluate
  shim = text[text.index('name = "evaluate"') :]
  assert '":cli_evaluate"' in shim[: shim.index(")\n")]


def test_modules_a_subprocess_imports_are_dependencies():
  """run_io_test runs `python -c "import iaat_tf.run_io, iaat_tf.cli.app,
  iaat_tf.pareto"`: Bazel's runfiles must hold those modules."""
  text = make_build.generate()
  stanza = text[text.index('name = "package_run_io_test"') :]
  stanza = stanza[: stanza.index(")\n")]
  assert '":cli_app"' in stanza and '":pareto"' in stanza


def test_slow_tests_get_their_own_tagged_target():
  text = make_build.generate()
  stanza = text[text.index('name = "cli_resume_slow_test"') :]
  stanza = stanza[: stanza.index(")\n")]
  assert '"slow"' in stanza and "\"-m\", \"'slow'\"" in stanza


def test_check_mode_fails_on_a_stale_build(tmp_path):
  stale = tmp_path / "BUILD"
  stale.write_text("# stale\n")
  result = subprocess.run(
    [
      sys.executable,
      "-c",
      "import sys, make_build; sys.exit(make_build.main(['--check', '--build=' + sys.argv[1]]))",
      str(stale),
    ],
    cwd=os.path.join(REPO, "tools"),
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert result.returncode == 1
  assert "run python tools/make_build.py" in result.stderr


def test_the_dependency_graph_is_acyclic():
  """Bazel refuses a cycle (Python does not): runs/training_steps.py and
  training_results.py once imported each other. Checked here, where the unit
  tier sees it, not only when CI's last step runs Bazel."""
  text = make_build.generate()
  deps = {}
  for stanza in text.split("\npy_")[1:]:
    name = re.search(r'name = "([^"]+)"', stanza).group(1)
    body = stanza[stanza.index("deps = ") :] if "deps = " in stanza else ""
    body = body[: body.index("]") + 1] if body else ""
    deps[name] = re.findall(r'":([^"]+)"', body)
  state: dict = {}

  def visit(node, path):
    if state.get(node) == "done":
      return
    assert state.get(node) != "open", " -> ".join(path + [node])
    state[node] = "open"
    for dep in deps.get(node, []):
      visit(dep, path + [node])
    state[node] = "done"

  for name in deps:
    visit(name, [])
