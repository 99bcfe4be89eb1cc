"""AutoAttack's options, one class for the library and every command; no TensorFlow.

`AutoAttackOptions` is what `autoattack.run_autoattack` takes and what the
`--aa_*` flags of `iaat-evaluate` and `iaat-frontier` build (each field an
`options.option`: the flag, its help and its default written once, here;
the defaults are AutoAttack's "standard" version). The fields without a
flag are set by the commands from their own flags (--norm, --jit_compile,
the run's seed). Adding an AutoAttack option is one field here plus its use
in autoattack.py. Importing this module loads no TensorFlow, so the
commands check their flags before TensorFlow starts.

`fingerprint()` names everything an AutoAttack result depends on, so a
stored result can be compared with the options asked for now
(`differences`, read by the frontier's cache).
"""

import dataclasses
import json
from typing import Literal, Mapping, Optional, Tuple

from iaat_tf import run_io
from iaat_tf.config import NORMS, Norm
from iaat_tf.options import ConfigError, Section, document_fields, option

AUTOATTACK = "AutoAttack"  # The --help group.
APGD_CE, APGD_T, FAB_T, SQUARE = "apgd-ce", "apgd-t", "fab-t", "square"
STANDARD = (APGD_CE, APGD_T, FAB_T, SQUARE)
Attack = Literal["apgd-ce", "apgd-t", "fab-t", "square"]
DEFAULT_BATCH_SIZE = 500  # The library's batch per device when batch_size is 0.
# What an example's outcome does not depend on: its batch (random starts are
# keyed by the example id; autoattack.py), and the cap on how many examples
# are read (which examples were attacked is the result's n_examples).
NOT_IN_RESULT = ("batch_size", "max_examples")


@dataclasses.dataclass(frozen=True)
class AutoAttackOptions(Section):
  """AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square): radius, size, counts."""

  eps: Optional[float] = option(
    None,
    "AutoAttack radius, e.g. 8/255 (default: the run's --eval_eps; required "
    "for a model not trained here; run_autoattack: its eps argument).",
    flag="aa_eps",
    group=AUTOATTACK,
    radius=True,
    minimum=0,
  )
  max_examples: Optional[int] = option(
    None,
    "AutoAttack test examples (0: all; default all, 5000 for imagenet2012 as RobustBench).",
    flag="aa_max_examples",
    group=AUTOATTACK,
    minimum=0,
  )
  apgd_iters: int = option(
    100, "APGD-CE and APGD-T iterations.", flag="aa_apgd_iters", group=AUTOATTACK, minimum=1
  )
  targets: int = option(
    9,
    "APGD-T and FAB-T target classes (fewer if the classes are fewer).",
    flag="aa_targets",
    group=AUTOATTACK,
    minimum=1,
  )
  fab_iters: int = option(
    100, "FAB-T iterations.", flag="aa_fab_iters", group=AUTOATTACK, minimum=1
  )
  square_queries: int = option(
    5000, "Square queries.", flag="aa_square_queries", group=AUTOATTACK, minimum=1
  )
  batch_size: int = option(
    0,
    "AutoAttack batch size per device (0: the evaluation's batch size; "
    f"run_autoattack: {DEFAULT_BATCH_SIZE}).",
    flag="aa_batch_size",
    group=AUTOATTACK,
    minimum=0,
  )
  # Set by the commands from their own flags, or by a library caller.
  attacks: Tuple[Attack, ...] = option(STANDARD, "The attacks, in order.", flag=None)
  square_p_init: float = option(0.8, "Square's initial patch fraction, in (0, 1].", flag=None)
  seed: int = option(0, "Keys the random starts (commands: the run's --seed).", flag=None)
  jit_compile: bool = option(
    False, "XLA-compile the attacks (evaluate's --jit_compile).", flag=None
  )
  norm: Norm = option("linf", "linf or l2: every attack's threat model (--norm).", flag=None)

  def __post_init__(self):
    super().__post_init__()  # The flags' bounds.
    unknown = [a for a in self.attacks if a not in STANDARD]
    if unknown or not self.attacks:
      raise ConfigError(
        f"Unknown AutoAttack attack(s) {unknown or '(none)'}; choose from {', '.join(STANDARD)}."
      )
    if self.norm not in NORMS:
      raise ConfigError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
    if not 0.0 < self.square_p_init <= 1.0:
      raise ConfigError(f"square_p_init must be in (0, 1], got {self.square_p_init}")

  def to_dict(self) -> dict:
    """Every option, as JSON values (a report's "settings")."""
    return {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}

  def fingerprint(self) -> dict:
    """Every option an AutoAttack result depends on, as JSON values."""
    return {k: v for k, v in self.to_dict().items() if k not in NOT_IN_RESULT}

  def differences(self, stored: Mapping) -> list:
    """'--aa_apgd_iters (3 there, 100 now)' for every option of `fingerprint`
    that `stored` (a result's settings) holds with another value, or lacks."""
    flags = {f.name: f.metadata["flag"] or f.name for f in dataclasses.fields(self)}
    out = []
    for name, want in self.fingerprint().items():
      have = _json(stored.get(name))
      if name in stored and (have == want or _close(have, want)):
        continue
      label = f"--{flags[name]}" if flags[name] != name else name
      out.append(run_io.changed(label, have, want))
    return out


def _json(value):
  return json.loads(json.dumps(value))


def _close(a, b) -> bool:
  """Two radii equal up to JSON's rounding."""
  number = (int, float)
  both = isinstance(a, number) and isinstance(b, number) and not isinstance(a, bool)
  return both and abs(a - b) <= 1e-9 * max(1.0, abs(b))


document_fields(AutoAttackOptions)
