"""AutoAttack's settings as the commands take them: one section, no TensorFlow.

`AutoAttackConfig` is the `--aa_*` flags of `iaat_tf.evaluate` and
`iaat_tf.frontier` (which passes them on to evaluate): fields made with
`options.option`, so each default is written here once, and the library's
`autoattack.AutoAttackOptions` takes its iteration and query counts from
these defaults (AutoAttack's "standard" version).
"""

import dataclasses
from typing import Optional

from iaat_tf.options import Section, document_fields, option

AUTOATTACK = "AutoAttack"  # The --help group.


@dataclasses.dataclass(frozen=True)
class AutoAttackConfig(Section):
  """AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square): radius, size, counts."""

  eps: Optional[float] = option(
    None,
    "AutoAttack radius, e.g. 8/255 (default: the run's --eval_eps; required "
    "for a model not trained here).",
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
    9, "APGD-T and FAB-T target classes.", flag="aa_targets", group=AUTOATTACK, minimum=1
  )
  fab_iters: int = option(
    100, "FAB-T iterations.", flag="aa_fab_iters", group=AUTOATTACK, minimum=1
  )
  square_queries: int = option(
    5000, "Square queries.", flag="aa_square_queries", group=AUTOATTACK, minimum=1
  )
  batch_size: int = option(
    0,
    "AutoAttack batch size per device (0: the evaluation's batch size).",
    flag="aa_batch_size",
    group=AUTOATTACK,
    minimum=0,
  )


document_fields(AutoAttackConfig)
