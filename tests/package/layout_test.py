"""The package's rooms and which way their imports go.

Each room may import only the rooms listed for it (and itself), so the
attacks know nothing of training, the library never reads flags, what a
run does (runs/) knows nothing of the command line, and the command line
only turns flags into a config and hands it to a run. Checked on every `iaat_tf`
import of every module, top-level and inside functions (the AST). The lazy
public names of `iaat_tf/__init__.py` (PEP 562) import nothing at load time.
"""

import ast
import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Room -> the rooms it may import. "top" holds config.py (and method_config.py),
# tensors.py, run_io.py, provenance.py, lazy.py and _version.py.
ALLOWED = {
  "top": {"top"},
  "attacks": {"attacks", "top"},
  "training": {"training", "attacks", "top"},
  "data": {"data", "top"},
  "models": {"models", "top"},
  "evaluation": {"evaluation", "attacks", "top"},
  "reports": {"reports", "data", "top"},
  "runs": {"runs", "training", "attacks", "data", "models", "evaluation", "reports", "top"},
  "cli": {"cli", "runs", "evaluation", "training", "top"},
  "commands": {
    "commands",
    "cli",
    "runs",
    "training",
    "attacks",
    "data",
    "models",
    "evaluation",
    "reports",
    "top",
  },
}
COMMANDS = {"main", "evaluate", "pareto", "frontier"}
ROOMS = {"attacks", "training", "data", "models", "evaluation", "reports", "runs", "cli"}


def _room(module: str) -> str:
  """'iaat_tf.attacks.apgd' -> 'attacks'; 'iaat_tf.config' -> 'top'."""
  parts = module.split(".")
  if len(parts) < 2:
    return "package"
  if parts[1] in ROOMS:
    return parts[1]
  return "commands" if parts[1] in COMMANDS else "top"


def _modules():
  for path in sorted(glob.glob(os.path.join(REPO, "iaat_tf", "**", "*.py"), recursive=True)):
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    yield path, rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path: str):
  """Every iaat_tf module a file imports (names after `from iaat_tf import`)."""
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iaat_tf"):
      if node.module == "iaat_tf":
        yield from (f"iaat_tf.{a.name}" for a in node.names)
      else:
        yield node.module
    elif isinstance(node, ast.Import):
      yield from (a.name for a in node.names if a.name.startswith("iaat_tf"))


@pytest.mark.parametrize("path,module", list(_modules()), ids=lambda v: str(v).split("/")[-1])
def test_imports_only_go_down(path, module):
  room = _room(module)
  if module in ("iaat_tf", "iaat_tf.runs"):
    return  # Lazy public names: nothing is imported at load time.
  for imported in _imports(path):
    target = _room(imported)
    assert target in ALLOWED[room], (
      f"{module} ({room}) imports {imported} ({target}); {room} may import {sorted(ALLOWED[room])}"
    )


def test_only_the_command_line_reads_flags():
  for path, module in _modules():
    if _room(module) in ("cli", "commands"):
      continue
    for node in ast.walk(ast.parse(open(path).read())):
      names = (
        [node.module or ""]
        if isinstance(node, ast.ImportFrom)
        else [a.name for a in node.names]
        if isinstance(node, ast.Import)
        else []
      )
      assert not any(n.split(".")[0] == "absl" for n in names), f"{module} imports absl"


def test_every_module_is_in_a_room_with_a_docstring():
  for path, module in _modules():
    assert ast.get_docstring(ast.parse(open(path).read())), f"{module}: no docstring"
  top = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "iaat_tf", "*.py"))}
  assert (
    top
    == {
      "__init__",
      "_version",
      "config",
      "method_config",
      "options",
      "validation",
      "provenance",
      "tensors",
      "run_io",
      "lazy",
    }
    | COMMANDS
  ), top


def test_subpackage_inits_only_re_export():
  """A room's __init__.py holds a docstring, imports and __all__ (or, in
  runs/, the lazy table of names as iaat_tf/__init__.py has it): the code a
  reader looks for is in the module named for it."""
  for path in glob.glob(os.path.join(REPO, "iaat_tf", "*", "__init__.py")):
    tree = ast.parse(open(path).read())
    lazy = os.path.basename(os.path.dirname(path)) == "runs"
    for i, node in enumerate(tree.body):
      if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        continue  # The docstring.
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) in (
        "__all__",
        *(["_LAZY", "(__getattr__, __dir__)"] if lazy else []),
      ):
        continue
      if lazy and isinstance(node, ast.If):  # The TYPE_CHECKING imports.
        continue
      raise AssertionError(
        f"{os.path.relpath(path, REPO)}:{node.lineno} holds "
        f"{type(node).__name__}; move it to a module named for it"
      )


def test_python_m_commands_are_shims_calling_cli_main():
  """`python -m iaat_tf.NAME` runs the same `main()` as the console script."""
  for name in COMMANDS:
    tree = ast.parse(open(os.path.join(REPO, "iaat_tf", f"{name}.py")).read())
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert len(tree.body) == 3 and len(imports) == 1, name
    assert imports[0].module.startswith("iaat_tf.cli.") and [a.name for a in imports[0].names] == [
      "main"
    ], name


def test_bench_and_experiments_run_as_modules_without_path_edits():
  """bench/ (timing) and experiments/ (accuracy) are packages run with
  `python -m` from the repository root: no script edits sys.path."""
  for top in ("bench", "experiments"):
    for root, dirs, files in os.walk(os.path.join(REPO, top)):
      dirs[:] = [d for d in dirs if not d.startswith((".", "_")) and d != "runs"]
      if any(f.endswith(".py") for f in files):
        assert "__init__.py" in files, root
      for name in files:
        if name.endswith(".py"):
          text = open(os.path.join(root, name)).read()
          assert "sys.path" not in text, os.path.join(root, name)


def _entry_modules():
  for top in ("bench", "experiments"):
    for path in sorted(glob.glob(os.path.join(REPO, top, "**", "*.py"), recursive=True)):
      if '__name__ == "__main__"' in open(path).read():
        yield os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")


@pytest.mark.slow
@pytest.mark.parametrize("module", list(_entry_modules()))
def test_every_bench_and_experiment_script_starts_as_a_module(module):
  result = subprocess.run(
    [sys.executable, "-m", module, "--help"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "usage" in result.stdout.lower(), result.stdout[-500:]
