"""Names a package loads when first used (PEP 562), for `iaat_tf` and `iaat_tf.runs`.

    _LAZY = {"name": ("package.module", "attribute"), ...}  # None: the module
    __getattr__, __dir__ = lazy.names(__name__, _LAZY)

Importing the package then imports none of those modules; the first use of a
name imports its module and keeps the value in the package (later lookups
skip `__getattr__`).
"""

import importlib
import sys
from typing import Any, Callable, Mapping, Optional, Tuple


def names(
  package: str, table: Mapping[str, Tuple[str, Optional[str]]]
) -> Tuple[Callable[[str], Any], Callable[[], list]]:
  """The `__getattr__` and `__dir__` of `package` for the names in `table`."""

  def __getattr__(name: str) -> Any:
    try:
      module_name, attribute = table[name]
    except KeyError:
      raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    setattr(sys.modules[package], name, value)  # Later lookups skip __getattr__.
    return value

  def __dir__() -> list:
    return sorted(set(vars(sys.modules[package])) | set(table))

  return __getattr__, __dir__
