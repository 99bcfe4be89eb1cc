"""Reads code blocks out of README.md, so tests can run the documented code."""

import os

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "README.md")


def python_block(heading: str) -> str:
  """The first ```python block after the line `heading` in README.md."""
  with open(README) as f:
    lines = f.read().splitlines()
  start = lines.index(heading)  # ValueError: the README lost its section.
  opening = lines.index("```python", start)
  closing = lines.index("```", opening + 1)
  return "\n".join(lines[opening + 1:closing]) + "\n"


def run_block(heading: str, namespace: dict | None = None) -> dict:
  """Executes the block; returns the names it defined."""
  namespace = {"__name__": "readme_snippet"} if namespace is None else namespace
  exec(compile(python_block(heading), f"README.md ({heading})", "exec"), namespace)  # pylint: disable=exec-used
  return namespace
