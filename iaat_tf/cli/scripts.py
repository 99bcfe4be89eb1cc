"""Console scripts (pyproject.toml): `iaat-train`, `iaat-evaluate`, `iaat-pareto`,
`iaat-frontier`.

Each runs its command exactly as `python -m iaat_tf.<command>` does (same
flags, same `--help` before TensorFlow loads, same one-line errors): the
module runs as `__main__`.
"""

import runpy
import sys


def _as_main(module: str) -> None:
  sys.argv[0] = module
  runpy.run_module(module, run_name="__main__", alter_sys=True)


def train() -> None:
  """`iaat-train`: python -m iaat_tf.main."""
  _as_main("iaat_tf.main")


def evaluate() -> None:
  """`iaat-evaluate`: python -m iaat_tf.evaluate."""
  _as_main("iaat_tf.evaluate")


def pareto() -> None:
  """`iaat-pareto`: python -m iaat_tf.pareto."""
  _as_main("iaat_tf.pareto")


def frontier() -> None:
  """`iaat-frontier`: python -m iaat_tf.frontier."""
  _as_main("iaat_tf.frontier")
