"""The typed configuration of a training run: one frozen dataclass per section.

Every field is an `options.option` (its flag, help, --help group and bounds
written once); a choice field's type is a `Literal` of the values it
accepts. Each section checks its own fields when built (`options.Section`);
the rules across fields and sections are `validation.py`'s. The command line
builds one `Config` from absl FLAGS (`cli/flags_config.py`); every library
module receives the part it needs and never reads FLAGS. Reading a run's
config.json back (older runs too) is `run_io.config_from_dict`. The
training method's sections (`MethodConfig`, `AttackConfig`, the Algorithm 2
presets) are method_config.py's, re-exported here with their types.
"""

import dataclasses
import typing
from typing import Literal, Optional, Tuple

# Re-exported: `from iaat_tf.config import ConfigError, MethodConfig, ...` is
# how the package and its users name them (the method's options live in
# method_config.py).
from iaat_tf.method_config import ADAPTIVE_METHODS as ADAPTIVE_METHODS
from iaat_tf.method_config import ALG2_PRESETS as ALG2_PRESETS
from iaat_tf.method_config import ATTACK as ATTACK
from iaat_tf.method_config import BN_MODES as BN_MODES
from iaat_tf.method_config import CHEAP_SIGNALS as CHEAP_SIGNALS
from iaat_tf.method_config import FAST_METHODS as FAST_METHODS
from iaat_tf.method_config import FGSM_RS as FGSM_RS
from iaat_tf.method_config import LOSS as LOSS
from iaat_tf.method_config import LOSSES as LOSSES
from iaat_tf.method_config import METHOD as METHOD
from iaat_tf.method_config import METHODS as METHODS
from iaat_tf.method_config import NORMS as NORMS
from iaat_tf.method_config import PROBE_EARLY_STOP as PROBE_EARLY_STOP
from iaat_tf.method_config import PROBE_SOURCES as PROBE_SOURCES
from iaat_tf.method_config import PROBES as PROBES
from iaat_tf.method_config import S_MINUS_RULES as S_MINUS_RULES
from iaat_tf.method_config import TRAIN_ATTACKS as TRAIN_ATTACKS
from iaat_tf.method_config import Alg2Preset as Alg2Preset
from iaat_tf.method_config import AttackConfig as AttackConfig
from iaat_tf.method_config import BnMode as BnMode
from iaat_tf.method_config import CheapSignal as CheapSignal
from iaat_tf.method_config import Loss as Loss
from iaat_tf.method_config import Method as Method
from iaat_tf.method_config import MethodConfig as MethodConfig
from iaat_tf.method_config import Norm as Norm
from iaat_tf.method_config import ProbeEarlyStop as ProbeEarlyStop
from iaat_tf.method_config import ProbeSource as ProbeSource
from iaat_tf.method_config import SMinusRule as SMinusRule
from iaat_tf.method_config import TrainAttack as TrainAttack
from iaat_tf.method_config import alg2_preset as alg2_preset
from iaat_tf.options import ConfigError as ConfigError
from iaat_tf.options import Section, document_fields, option

Dataset = Literal["digits", "mnist", "cifar10", "cifar100", "imagenet2012", "npz", "synthetic"]
# wide_resnet: the standard WRN (Zagoruyko & Komodakis); authors_wrn: the IAAT
# authors' modified WRN (authors_wrn.py), the network of the paper's numbers.
Model = Literal["small_cnn", "wide_resnet", "authors_wrn", "resnet50"]
Strategy = Literal["default", "mirrored", "multi_worker"]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
JitMode = Literal["none", "attack", "step"]  # What --jit_compile XLA-compiles.
AugmentPad = Literal["zeros", "reflect"]  # The authors' code pads by reflection.
WeightDecayType = Literal["coupled", "decoupled"]
LrSchedule = Literal["step", "cosine", "onecycle", "cyclic"]  # training/schedules.py
ExportModel = Literal["best", "last", "ema"]
EarlyStoppingWeights = Literal["raw", "ema"]  # What robust early stopping watches.
Optimizer = Literal["sgd", "adam"]

# The same values as tuples, for code that lists or tests them.
DATASETS, MODELS, STRATEGIES, PRECISIONS, JIT_MODES, AUGMENT_PADS = (
  typing.get_args(t) for t in (Dataset, Model, Strategy, Precision, JitMode, AugmentPad)
)
WEIGHT_DECAY_TYPES, LR_SCHEDULES, EXPORT_MODELS, EARLY_STOPPING_WEIGHTS, OPTIMIZERS = (
  typing.get_args(t)
  for t in (WeightDecayType, LrSchedule, ExportModel, EarlyStoppingWeights, Optimizer)
)
SYNTHETIC_LIKE = ("digits", "mnist", "cifar10", "cifar100", "imagenet2012")


# The --help groups (METHOD, PROBES, LOSS and ATTACK: method_config.py).
RUN, DATA, MODEL, OPTIM, EVAL, EARLY = (
  "Run",
  "Data",
  "Model",
  "Optimisation and devices",
  "Evaluation during and after training",
  "Robust early stopping, weight average",
)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  """Where the examples come from and how they are batched."""

  dataset: Dataset = option("digits", f"One of {', '.join(DATASETS)}.", group=DATA)
  data_dir: Optional[str] = option(
    None, "tfds data directory (mnist/cifar/imagenet).", group=DATA, path=True
  )
  manual_dir: Optional[str] = option(
    None, "tfds manual_dir (ImageNet tar files).", group=DATA, path=True
  )
  npz_path: Optional[str] = option(
    None, "For --dataset=npz: file with x, y[, x_test, y_test].", group=DATA, path=True
  )
  download: bool = option(False, "Let tfds download/prepare missing data.", group=DATA)
  holdout_fraction: float = option(
    0.2, "Test fraction held out (digits, npz without a test split).", group=DATA, above=0, below=1
  )
  augment: bool = option(False, "Pad-4 random crop + horizontal flip (CIFAR-style).", group=DATA)
  augment_pad: AugmentPad = option(
    "zeros",
    "--augment's padding: zeros or reflect (the authors' code: T.Pad(4, padding_mode='reflect')).",
    group=DATA,
  )
  batch_size: int = option(128, "Global training batch size.", group=DATA, minimum=1)
  eval_batch_size: int = option(256, "Global evaluation batch size.", group=DATA, minimum=1)
  shuffle_buffer: int = option(
    0,
    "Shuffle buffer in examples; 0: auto (the whole training set, ImageNet 50,000).",
    group=DATA,
    minimum=0,
  )
  max_train_examples: int = option(
    0, "Use only the first N training examples (0: all).", group=DATA
  )
  max_eval_examples: int = option(
    0, "Use only the first N test examples (0: all).", flag="max_test_examples", group=DATA
  )
  image_size: int = option(224, "ImageNet crop size.", group=DATA)
  seed: int = option(0, "Shuffling and augmentation seed (set from --seed).", flag=None)
  num_classes: int = option(
    0, "Number of classes; 0: from the dataset (a label outside it is an error).", group=DATA
  )
  synthetic_like: str = option(
    "cifar10",
    "For --dataset=synthetic: take image shape and classes from "
    "digits, mnist, cifar10, cifar100 or imagenet2012.",
    group=DATA,
  )
  synthetic_shape: Tuple[int, ...] = option(
    (), "For --dataset=synthetic: H,W,C overriding --synthetic_like's shape.", group=DATA
  )
  synthetic_train_examples: int = option(
    1024, "For --dataset=synthetic: training examples.", group=DATA
  )
  synthetic_test_examples: int = option(256, "For --dataset=synthetic: test examples.", group=DATA)
  validation_fraction: float = option(
    0.0,
    "Hold out this fraction of the training split (fixed by example id, "
    "not --seed) for robust early stopping (0: none).",
    group=EARLY,
    minimum=0,
    below=1,
  )


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  """The classifier (models/registry.py)."""

  name: Model = option(
    "small_cnn",
    f"One of {', '.join(MODELS)} (wide_resnet: the standard WRN; "
    "authors_wrn: the IAAT authors' modified WRN, docs/DEPARTURES.md).",
    flag="model",
    group=MODEL,
  )
  depth: int = option(
    28,
    "WideResNet depth (wide_resnet: 28, 32, 34; authors_wrn: 6n+2, e.g. 32).",
    flag="wrn_depth",
    group=MODEL,
  )
  width: int = option(10, "WideResNet widening factor.", flag="wrn_width", group=MODEL, minimum=1)
  sync_batchnorm: bool = option(
    False, "Synchronise BatchNorm statistics across replicas.", group=MODEL
  )
  dropout: float = option(
    0.0, "Dropout rate (wide_resnet: inside each block; resnet50: before the logits).", group=MODEL
  )


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """Optimisation, devices and run-time settings."""

  epochs: int = option(10, "Training epochs.", group=OPTIM, minimum=1)
  optimizer: Optimizer = option("sgd", "sgd or adam.", group=OPTIM)
  learning_rate: float = option(0.1, "Initial learning rate.", group=OPTIM, above=0)
  momentum: float = option(0.9, "SGD momentum.", group=OPTIM)
  weight_decay: float = option(
    5e-4, "Weight decay (0: none); see --weight_decay_type.", group=OPTIM, minimum=0
  )
  weight_decay_type: WeightDecayType = option(
    "coupled",
    "coupled: PyTorch-style L2, wd*w added to the gradient before "
    "momentum (the authors' recipe); decoupled: w -= lr*wd*w after the step (Keras' "
    "weight_decay; with adam this is AdamW).",
    group=OPTIM,
  )
  lr_boundaries: Tuple[int, ...] = option(
    (), "Epochs at which lr *= lr_decay, e.g. 70,90,100.", group=OPTIM
  )
  lr_decay: float = option(0.2, "Learning-rate factor at each boundary.", group=OPTIM)
  lr_warmup_epochs: int = option(
    0,
    "Linear learning-rate warmup (Goyal et al. 2017, large-batch ImageNet): step "
    "s of the first N epochs trains at --lr_schedule's rate x (s + 1) / (N x steps "
    "per epoch) (0: none).",
    group=OPTIM,
    minimum=0,
  )
  lr_schedule: LrSchedule = option(
    "step",
    "step (x --lr_decay at each --lr_boundaries epoch; constant without "
    "them), cosine (per step from --learning_rate to 0 over the run), onecycle "
    "(fast_adversarial's MNIST cycle: linear 0 -> --learning_rate at 2/5 of the "
    "epochs -> 0) or cyclic (their CIFAR cycle, PyTorch's CyclicLR: 0 -> "
    "--learning_rate at half the steps -> 0, SGD momentum cycled --momentum -> 0.8 "
    "-> --momentum).",
    group=OPTIM,
  )
  ema_decay: float = option(
    0.0,
    "Keep an exponential moving average of the weights with this decay (e.g. "
    "0.999; 0: off), evaluated each validated epoch beside the raw weights "
    "(val_ema_*).",
    group=EARLY,
    minimum=0,
    below=1,
  )
  strategy: Strategy = option("default", f"One of {', '.join(STRATEGIES)}.", group=OPTIM)
  num_virtual_devices: int = option(
    0, "Split the CPU into N logical devices (testing mirrored).", group=OPTIM, minimum=0
  )
  gpu_memory_growth: bool = option(
    True,
    "GPU memory as needed (TensorFlow's TF_FORCE_GPU_ALLOW_GROWTH), so runs "
    "can share a GPU; --nogpu_memory_growth: TensorFlow's default, all of each "
    "visible GPU at start. An exported TF_FORCE_GPU_ALLOW_GROWTH wins.",
    group=OPTIM,
  )
  precision: Precision = option("float32", f"One of {', '.join(PRECISIONS)}.", group=OPTIM)
  jit_compile: JitMode = option(
    "none",
    "XLA: none, attack (the PGD function), or step (the whole train step; "
    "--strategy=default only).",
    group=ATTACK,
  )
  steps_per_execution: int = option(1, "Train steps per tf.function call.", group=OPTIM, minimum=1)
  keep_checkpoints: int = option(3, "Checkpoints kept.", group=OPTIM)
  verbose: int = option(
    1,
    "0: silent; 1: a summary line per epoch (plus Keras' progress bar on a "
    "terminal); 2: Keras' line with every metric.",
    group=RUN,
  )


@dataclasses.dataclass(frozen=True)
class ValidationConfig(Section):
  """The PGD validation during training and the final test."""

  eps: float = option(
    8.0 / 255, "Radius of the PGD validation.", flag="eval_eps", group=EVAL, radius=True
  )
  steps: int = option(10, "PGD steps in evaluation.", flag="eval_pgd_steps", group=EVAL, minimum=1)
  step_size: float = option(
    2.0 / 255, "PGD step size in validation.", flag="eval_step_size", group=EVAL, radius=True
  )
  every_epochs: int = option(1, "Validate every N epochs.", flag="eval_every_epochs", group=EVAL)
  max_examples: int = option(
    1000, "Test examples in the per-epoch validation.", flag="val_examples", group=EVAL
  )


@dataclasses.dataclass(frozen=True)
class Config(Section):
  """One training run: where it writes, and every section's settings."""

  output_dir: str = option(
    None, "Directory for checkpoints, SavedModel, results.", group=RUN, path=True
  )
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  attack: AttackConfig = AttackConfig()
  method: MethodConfig = MethodConfig()
  train: TrainConfig = TrainConfig()
  validation: ValidationConfig = ValidationConfig()
  seed: int = option(0, "Global seed (weights, shuffling, attack noise).", group=RUN)
  export: bool = option(True, "Export the classifier as a SavedModel at the end.", group=RUN)
  overwrite: bool = option(
    False,
    "Delete what --output_dir holds and train from scratch (default: resume "
    "an unfinished run; leave a finished one untouched).",
    group=RUN,
  )
  export_model: ExportModel = option(
    "best",
    "Weights to export (and test): best (with --validation_fraction: the "
    "best-validation epoch's; else the last), last (the final weights) or ema (the "
    "final weight average, --ema_decay).",
    group=EARLY,
  )
  early_stopping_weights: EarlyStoppingWeights = option(
    "raw",
    "With --validation_fraction: the weights whose validation PGD accuracy "
    "picks the best epoch, raw or ema (the weight average; it is then what is saved "
    "as best).",
    group=EARLY,
  )

  def to_dict(self):
    return dataclasses.asdict(self)


SECTIONS = {
  "data": DataConfig,
  "model": ModelConfig,
  "attack": AttackConfig,
  "method": MethodConfig,
  "train": TrainConfig,
  "validation": ValidationConfig,
}


for _cls in (Config, DataConfig, ModelConfig, TrainConfig, ValidationConfig):
  document_fields(_cls)
