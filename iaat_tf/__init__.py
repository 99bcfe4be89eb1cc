"""iaat_tf: Instance Adaptive Adversarial Training (IAAT) for TensorFlow/Keras.

The names a user needs, importable from the package:

* Training: `AdversarialTrainer` (a `keras.Model` wrapping your classifier;
  `compile`, then `fit` on ({"image", "index"}, label) batches), configured
  by `MethodConfig` (method, radius schedule), `AttackConfig` (training PGD;
  `norm="linf"` or `"l2"`, the threat model, whose units every radius is in)
  and `ValidationConfig` (validation PGD).
* Data: `with_example_ids(dataset)` keys any unbatched (image, label)
  `tf.data.Dataset` by a stable example id (the eps table's index);
  `num_examples(dataset)` sizes the table.
* Attacks on any `logits_fn(images) -> logits`: `pgd_attack`, `apgd_attack`
  (APGD-CE / APGD-DLR / APGD-T, configured by `ApgdOptions`), L-inf or L2
  (`norm=`).
* Evaluation: `run_autoattack` (AutoAttack standard: APGD-CE, APGD-T, FAB-T,
  Square; `AutoAttackOptions`), `evaluate_robustness` (clean, PGD, APGD and
  worst-case accuracy at several radii), `gradient_masking_report`.
* Export: `export_classifier` (SavedModel, images -> logits) and
  `load_classifier` (a SavedModel back as a logits function).
* Experiments: `flagfile(name)`, the path of a shipped flagfile
  (`flagfile("quickstart")`); `__version__`.
* Custom training loops: `TrainingRecipe` (the stages of `fit`'s train
  step, docs/python_api.md), `EpsTable` (the radius table) and `radius`
  (the radius rules as pure functions).

Names load lazily (PEP 562): `import iaat_tf` imports no TensorFlow; the
first use of a name imports its module. So the command lines (`python -m
iaat_tf.main --help`) stay fast.
"""

from typing import TYPE_CHECKING

from iaat_tf import lazy
from iaat_tf._version import __version__  # noqa: F401

# Public name -> (module, attribute in it; None: the module itself).
# To publish a name, add one line here (and to the TYPE_CHECKING block).
_LAZY = {
  # Training.
  "AdversarialTrainer": ("iaat_tf.training.trainer", "AdversarialTrainer"),
  "MethodConfig": ("iaat_tf.config", "MethodConfig"),
  "AttackConfig": ("iaat_tf.config", "AttackConfig"),
  "ValidationConfig": ("iaat_tf.config", "ValidationConfig"),
  "ConfigError": ("iaat_tf.config", "ConfigError"),
  # Data.
  "with_example_ids": ("iaat_tf.data.example_ids", "with_example_ids"),
  "num_examples": ("iaat_tf.data.example_ids", "num_examples"),
  "ExampleIdError": ("iaat_tf.data.example_ids", "ExampleIdError"),
  # Attacks.
  "pgd_attack": ("iaat_tf.attacks", "pgd_attack"),
  "apgd_attack": ("iaat_tf.attacks.apgd", "apgd_attack"),
  "ApgdOptions": ("iaat_tf.attacks.apgd", "ApgdOptions"),
  # Evaluation and export.
  "run_autoattack": ("iaat_tf.evaluation.autoattack", "run_autoattack"),
  "AutoAttackOptions": ("iaat_tf.evaluation.autoattack", "AutoAttackOptions"),
  "evaluate_robustness": ("iaat_tf.evaluation.robustness", "evaluate_robustness"),
  "gradient_masking_report": ("iaat_tf.evaluation.masking", "gradient_masking_report"),
  "export_classifier": ("iaat_tf.models.export", "export_classifier"),
  "load_classifier": ("iaat_tf.models.export", "load_classifier"),
  # Custom training loops.
  "EpsTable": ("iaat_tf.training.eps_table", "EpsTable"),
  "TrainingRecipe": ("iaat_tf.training.recipe", "TrainingRecipe"),
  "radius": ("iaat_tf.training.radius", None),
  "attacks": ("iaat_tf.attacks", None),
  # The shipped experiments: flagfile("quickstart") is a path for --flagfile.
  "flagfile": ("iaat_tf.runs.flagfiles", "flagfile"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy.names(__name__, _LAZY)


if TYPE_CHECKING:  # For type checkers and IDEs; never executed.
  from iaat_tf import attacks  # noqa: F401
  from iaat_tf.training import radius  # noqa: F401
  from iaat_tf.training.recipe import TrainingRecipe  # noqa: F401
  from iaat_tf.training.trainer import AdversarialTrainer  # noqa: F401
  from iaat_tf.attacks.apgd import ApgdOptions, apgd_attack  # noqa: F401
  from iaat_tf.evaluation.autoattack import AutoAttackOptions  # noqa: F401
  from iaat_tf.evaluation.autoattack import run_autoattack  # noqa: F401
  from iaat_tf.config import (
    AttackConfig,
    ConfigError,
    ValidationConfig,  # noqa: F401
    MethodConfig,
  )
  from iaat_tf.training.eps_table import EpsTable  # noqa: F401
  from iaat_tf.runs.flagfiles import flagfile  # noqa: F401
  from iaat_tf.data.example_ids import (
    ExampleIdError,
    num_examples,  # noqa: F401
    with_example_ids,
  )
  from iaat_tf.models.export import export_classifier, load_classifier  # noqa: F401
  from iaat_tf.evaluation.masking import gradient_masking_report  # noqa: F401
  from iaat_tf.evaluation.robustness import evaluate_robustness  # noqa: F401
