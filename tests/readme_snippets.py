"""Reads code blocks out of README.md and docs/, so tests run the documented code."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")


def python_block(heading: str, path: str = README) -> str:
  """The first ```python block after the line `heading` in `path` (README.md)."""
  with open(path) as f:
    lines = f.read().splitlines()
  start = lines.index(heading)  # ValueError: the README lost its section.
  opening = lines.index("```python", start)
  closing = lines.index("```", opening + 1)
  return "\n".join(lines[opening + 1 : closing]) + "\n"


def run_block(heading: str, namespace: dict | None = None, path: str = README) -> dict:
  """Executes the block; returns the names it defined."""
  namespace = {"__name__": "readme_snippet"} if namespace is None else namespace
  where = f"{os.path.relpath(path, REPO)} ({heading})"
  exec(compile(python_block(heading, path), where, "exec"), namespace)  # pylint: disable=exec-used
  return namespace
