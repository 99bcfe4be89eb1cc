"""Command-line flags and the one place that turns them into a `Config`.

Radii accept fractions, e.g. `--eps=8/255`. Only `main.py` (and tests of it)
import this module; library code receives a `Config`.
"""

import os

from absl import flags

from iaat_tf import config as cfg
from iaat_tf.config import ConfigError, parse_radius

_D = cfg.DataConfig()
_M = cfg.ModelConfig()
_A = cfg.AttackConfig()
_ME = cfg.MethodConfig()
_T = cfg.TrainConfig()
_E = cfg.EvalConfig()

# The radius flags' defaults under each --norm. L2 is RobustBench's 0.5
# track; its gamma and step sizes are the L-inf ones scaled by 0.5 / (8/255)
# (gamma 1.9/255 -> 0.12, 2/255 -> 0.125 = 2.5 eps / 10); no radius cap.
RADIUS_DEFAULTS = {
    "linf": {"eps": "8/255", "gamma": "1.9/255", "eps_max": "1",
             "pgd_min_step": "2/255", "eval_eps": "8/255", "eval_step_size": "2/255"},
    "l2": {"eps": "0.5", "gamma": "0.12", "eps_max": "inf",
           "pgd_min_step": "0.125", "eval_eps": "0.5", "eval_step_size": "0.125"}}


def _radius_help(name: str, text: str) -> str:
  return f"{text} In --norm's units."

# Run.
flags.DEFINE_string("output_dir", None, "Directory for checkpoints, SavedModel, results.")
flags.DEFINE_integer("seed", 0, "Global seed (weights, shuffling, attack noise).")
flags.DEFINE_bool("export", True, "Export the classifier as a SavedModel at the end.")
flags.DEFINE_bool("overwrite", False, "Delete what --output_dir holds and train from scratch "
                  "(default: resume an unfinished run; leave a finished one untouched).")
flags.DEFINE_string("export_model", "best", "Weights to export (and test): best (with --validation_fraction: the best-validation epoch's; else the last), last (the final weights) or ema (the final weight average, --ema_decay).")
flags.DEFINE_string("early_stopping_weights", "raw", "With --validation_fraction: the weights whose validation PGD accuracy picks the best epoch, raw or ema (the weight average; it is then what is saved as best).")
# Data.
flags.DEFINE_string("dataset", _D.dataset, f"One of {', '.join(cfg.DATASETS)}.")
flags.DEFINE_string("data_dir", None, "tfds data directory (mnist/cifar/imagenet).")
flags.DEFINE_string("manual_dir", None, "tfds manual_dir (ImageNet tar files).")
flags.DEFINE_string("npz_path", None, "For --dataset=npz: file with x, y[, x_test, y_test].")
flags.DEFINE_bool("download", False, "Let tfds download/prepare missing data.")
flags.DEFINE_float("holdout_fraction", _D.holdout_fraction, "Test fraction held out (digits, npz without a test split).")
flags.DEFINE_bool("augment", _D.augment, "Pad-4 random crop + horizontal flip (CIFAR-style).")
flags.DEFINE_string("augment_pad", _D.augment_pad, "--augment's padding: zeros or reflect (the authors' code: T.Pad(4, padding_mode='reflect')).")
flags.DEFINE_integer("batch_size", _D.batch_size, "Global training batch size.")
flags.DEFINE_integer("eval_batch_size", _D.eval_batch_size, "Global evaluation batch size.")
flags.DEFINE_integer("shuffle_buffer", _D.shuffle_buffer, "Shuffle buffer in examples; 0: auto (the whole training set, ImageNet 50,000).")
flags.DEFINE_integer("max_train_examples", 0, "Use only the first N training examples (0: all).")
flags.DEFINE_integer("max_test_examples", 0, "Use only the first N test examples (0: all).")
flags.DEFINE_integer("image_size", _D.image_size, "ImageNet crop size.")
flags.DEFINE_integer("num_classes", _D.num_classes, "Number of classes; 0: from the dataset (a label outside it is an error).")
flags.DEFINE_string("synthetic_like", _D.synthetic_like, "For --dataset=synthetic: take image shape and classes from digits, mnist, cifar10, cifar100 or imagenet2012.")
flags.DEFINE_list("synthetic_shape", [], "For --dataset=synthetic: H,W,C overriding --synthetic_like's shape.")
flags.DEFINE_integer("synthetic_train_examples", _D.synthetic_train_examples, "For --dataset=synthetic: training examples.")
flags.DEFINE_integer("synthetic_test_examples", _D.synthetic_test_examples, "For --dataset=synthetic: test examples.")
flags.DEFINE_float("validation_fraction", _D.validation_fraction, "Hold out this fraction of the training split (fixed by example id, not --seed) for robust early stopping (0: none).")
# Model.
flags.DEFINE_string("model", _M.name, f"One of {', '.join(cfg.MODELS)} (wide_resnet: the standard WRN; authors_wrn: the IAAT authors' modified WRN, docs/DEPARTURES.md).")
flags.DEFINE_integer("wrn_depth", _M.depth, "WideResNet depth (wide_resnet: 28, 32, 34; authors_wrn: 6n+2, e.g. 32).")
flags.DEFINE_integer("wrn_width", _M.width, "WideResNet widening factor.")
flags.DEFINE_bool("sync_batchnorm", _M.sync_batchnorm, "Synchronise BatchNorm statistics across replicas.")
flags.DEFINE_float("dropout", _M.dropout, "Dropout rate (wide_resnet: inside each block; resnet50: before the logits).")
# Method.
flags.DEFINE_string("method", _ME.method, f"One of {', '.join(cfg.METHODS)}.")
flags.DEFINE_string("norm", _A.norm, "Threat model of every training attack and of validation: linf or l2 (radii, gamma, eps_max and step sizes in its units; docs/methods.md).")
flags.DEFINE_string("eps", None, _radius_help("eps", "PGD-AT radius; IAAT warmup radius eps_w."))
flags.DEFINE_integer("warmup_epochs", _ME.warmup_epochs, "IAAT: epochs at uniform eps before adapting.")
flags.DEFINE_string("gamma", None, _radius_help("gamma", "IAAT: radius step."))
flags.DEFINE_float("beta", _ME.beta, "IAAT: weight of the new radius in eps <- beta*new + (1-beta)*old.")
flags.DEFINE_string("eps_max", None, _radius_help("eps_max", "IAAT: upper clip of every radius (inf: none)."))
flags.DEFINE_float("cheap_beta", _ME.cheap_beta, "iaat_cheap: smoothing weight of the new radius (0: none, the paper's rule).")
flags.DEFINE_string("s_minus", _ME.s_minus, "iaat: what clean-misclassified examples train on: clean (their clean image, the paper's Algorithm 1) or adversarial (the training attack at their stored radius, as the authors' code does).")
flags.DEFINE_string("cheap_signal", _ME.cheap_signal, "iaat_cheap: judge the training attack's outcome in an inference-mode forward pass (inference) or from the training forward pass (train_forward, free).")
flags.DEFINE_string("loss", _ME.loss, "Training loss: ce (on the adversarial example), trades or mart; any --method.")
flags.DEFINE_float("trades_beta", _ME.trades_beta, "TRADES: weight of KL(clean || adversarial).")
flags.DEFINE_float("mart_beta", _ME.mart_beta, "MART: weight of the misclassification-weighted KL.")
flags.DEFINE_integer("eps_ramp_epochs", _ME.eps_ramp_epochs, "Ramp the training radius linearly (per step) from 0 to --eps over N epochs (pgd_at, IAAT warmup; 0: none).")
# Algorithm 2's probes (docs/speed.md; defaults: the exact algorithm).
flags.DEFINE_string("alg2_preset", "exact", "iaat: Algorithm 2's probes, exact (both probes are the training attack) or fast (the measured fast setting, see docs/speed.md); the probe_* flags below override a preset's values.")
flags.DEFINE_integer("probe_steps", _ME.probe_steps, "iaat: PGD steps of each probe attack (0: --pgd_steps).")
flags.DEFINE_float("probe_step_ratio", _ME.probe_step_ratio, "iaat: probe step = max(eps * ratio, pgd_min_step) (0: --pgd_step_ratio).")
flags.DEFINE_bool("probe_batched", _ME.probe_batched, "iaat: run both probes as one attack on a doubled batch.")
flags.DEFINE_string("probe_early_stop", _ME.probe_early_stop, "iaat: none (exact), batch (stop a probe once every example is misclassified) or example (also drop misclassified examples from the probe each step).")
flags.DEFINE_bool("probe_only_needed", _ME.probe_only_needed, "iaat: probe only the examples whose outcome Algorithm 2 uses (clean-correct; the probe at eps only where eps+gamma broke).")
# Training attack.
flags.DEFINE_string("train_attack", _A.name, "pgd (--pgd_steps steps; the --pgd_* flags) or fgsm_rs (FGSM with a random start, Wong et al. 2020: uniform start in the L-inf ball, on the sphere under --norm=l2; one step of 1.25 eps; BatchNorm per --attack_bn_mode, theirs is train; replaces --pgd_steps, --pgd_step_ratio, --pgd_min_step and --pgd_random_start). fgsm_rs trains --method=pgd_at (FGSM-RS) or iaat_cheap (adaptive radii at one attack step).")
flags.DEFINE_integer("pgd_steps", _A.steps, "PGD steps (k) in training attacks.")
flags.DEFINE_float("pgd_step_ratio", _A.step_ratio, "PGD step = max(eps * ratio, pgd_min_step); 0 (default): ratio 2/k, the authors' max(eps / (0.5 k), 2/255) rule.")
flags.DEFINE_string("pgd_min_step", None, _radius_help("pgd_min_step", "Smallest PGD step size."))
flags.DEFINE_bool("pgd_random_start", _A.random_start, "Uniform random start in the eps ball.")
flags.DEFINE_string("attack_bn_mode", _A.bn_mode, "BatchNorm mode while attacking: inference (default) or train (authors' code).")
flags.DEFINE_string("jit_compile", _T.jit_compile, "XLA: none, attack (the PGD function), or step (the whole train step; --strategy=default only).")
# Optimisation and devices.
flags.DEFINE_integer("epochs", _T.epochs, "Training epochs.")
flags.DEFINE_string("optimizer", _T.optimizer, "sgd or adam.")
flags.DEFINE_float("learning_rate", _T.learning_rate, "Initial learning rate.")
flags.DEFINE_float("momentum", _T.momentum, "SGD momentum.")
flags.DEFINE_float("weight_decay", _T.weight_decay, "Weight decay (0: none); see --weight_decay_type.")
flags.DEFINE_string("weight_decay_type", _T.weight_decay_type,
                    "coupled: PyTorch-style L2, wd*w added to the gradient before "
                    "momentum (the authors' recipe); decoupled: w -= lr*wd*w after "
                    "the step (Keras' weight_decay; with adam this is AdamW).")
flags.DEFINE_list("lr_boundaries", [], "Epochs at which lr *= lr_decay, e.g. 70,90,100.")
flags.DEFINE_float("lr_decay", _T.lr_decay, "Learning-rate factor at each boundary.")
flags.DEFINE_float("ema_decay", _T.ema_decay, "Keep an exponential moving average of the weights with this decay (e.g. 0.999; 0: off), evaluated each validated epoch beside the raw weights (val_ema_*).")
flags.DEFINE_string("lr_schedule", _T.lr_schedule, "step (x --lr_decay at each --lr_boundaries epoch; constant without them), cosine (per step from --learning_rate to 0 over the run), onecycle (fast_adversarial's MNIST cycle: linear 0 -> --learning_rate at 2/5 of the epochs -> 0) or cyclic (their CIFAR cycle, PyTorch's CyclicLR: 0 -> --learning_rate at half the steps -> 0, SGD momentum cycled --momentum -> 0.8 -> --momentum).")
flags.DEFINE_string("strategy", _T.strategy, f"One of {', '.join(cfg.STRATEGIES)}.")
flags.DEFINE_integer("num_virtual_devices", 0, "Split the CPU into N logical devices (testing mirrored).")
flags.DEFINE_string("precision", _T.precision, f"One of {', '.join(cfg.PRECISIONS)}.")
flags.DEFINE_integer("steps_per_execution", _T.steps_per_execution, "Train steps per tf.function call.")
flags.DEFINE_integer("keep_checkpoints", _T.keep_checkpoints, "Checkpoints kept.")
flags.DEFINE_integer("verbose", 1, "0: silent; 1: a summary line per epoch (plus Keras' "
                     "progress bar on a terminal); 2: Keras' line with every metric.")
# Evaluation.
flags.DEFINE_string("eval_eps", None, _radius_help("eval_eps", "Radius of the PGD validation."))
flags.DEFINE_integer("eval_pgd_steps", _E.steps, "PGD steps in evaluation.")
flags.DEFINE_string("eval_step_size", None, _radius_help("eval_step_size", "PGD step size in validation."))
flags.DEFINE_integer("eval_every_epochs", _E.every_epochs, "Validate every N epochs.")
flags.DEFINE_integer("val_examples", _E.max_examples, "Test examples in the per-epoch validation.")


for _name in RADIUS_DEFAULTS["linf"]:  # --help shows both norms' defaults.
  flags.FLAGS[_name].shown_default = (f"{RADIUS_DEFAULTS['linf'][_name]} (linf), "
                                      f"{RADIUS_DEFAULTS['l2'][_name]} (l2)")

# --help prints the flags in these groups (tests check every flag is in one).
HELP_GROUPS = (
    ("Run", ("output_dir", "overwrite", "seed", "export", "verbose", "debug")),
    ("Data", ("dataset", "data_dir", "manual_dir", "npz_path", "download",
              "holdout_fraction", "augment", "augment_pad", "batch_size", "eval_batch_size",
              "shuffle_buffer", "max_train_examples", "max_test_examples",
              "image_size", "num_classes", "synthetic_like", "synthetic_shape",
              "synthetic_train_examples", "synthetic_test_examples")),
    ("Model", ("model", "wrn_depth", "wrn_width", "sync_batchnorm", "dropout")),
    ("Method (radius schedule)", ("method", "norm", "eps", "warmup_epochs", "gamma",
                                  "beta", "eps_max", "s_minus", "cheap_beta",
                                  "cheap_signal", "eps_ramp_epochs")),
    ("Algorithm 2's probes (speed)", ("alg2_preset", "probe_steps",
                                      "probe_step_ratio", "probe_batched",
                                      "probe_early_stop", "probe_only_needed")),
    ("Loss", ("loss", "trades_beta", "mart_beta")),
    ("Training attack", ("train_attack", "pgd_steps", "pgd_step_ratio",
                         "pgd_min_step", "pgd_random_start", "attack_bn_mode",
                         "jit_compile")),
    ("Optimisation and devices", ("epochs", "optimizer", "learning_rate",
                                  "momentum", "weight_decay",
                                  "weight_decay_type", "lr_boundaries",
                                  "lr_decay", "lr_schedule", "strategy", "num_virtual_devices",
                                  "precision", "steps_per_execution",
                                  "keep_checkpoints")),
    ("Evaluation during and after training", (
        "eval_eps", "eval_pgd_steps", "eval_step_size", "eval_every_epochs",
        "val_examples")),
    ("Robust early stopping, weight average", (
        "validation_fraction", "export_model", "early_stopping_weights",
        "ema_decay")),
)


def _int_list(name: str, values) -> tuple:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ConfigError(f"--{name}={','.join(values)} must be comma-separated integers") from None


def _jit_mode(value: str) -> str:
  """--jit_compile value; the old boolean spellings map to none / attack."""
  legacy = {"false": "none", "0": "none", "true": "attack", "1": "attack"}
  return legacy.get(str(value).lower(), str(value))


def _probe_settings(f: flags.FlagValues, attack: cfg.AttackConfig) -> dict:
  """MethodConfig's probe_* fields: the preset, overridden by explicit flags."""
  # An explicit --probe_steps keeps the preset's rule for the step size.
  values = cfg.alg2_preset(f.alg2_preset, attack.steps, attack.ratio,
                           f.probe_steps if f["probe_steps"].present else None)
  for name in ("probe_steps", "probe_step_ratio", "probe_batched",
               "probe_early_stop", "probe_only_needed"):
    if f[name].present or name not in values:
      values[name] = f[name].value
  return values


def _path(value):
  return os.path.expanduser(value) if value else value


def config_from_flags(f: flags.FlagValues = flags.FLAGS) -> cfg.Config:
  """Builds and validates the run's `Config` from parsed flags."""
  if not f.output_dir:
    raise ConfigError("--output_dir is required")
  imagenet_shaped = f.dataset == "imagenet2012" or (
      f.dataset == "synthetic" and f.synthetic_like == "imagenet2012")
  if f["image_size"].present and not imagenet_shaped:
    raise ConfigError(f"--image_size applies to imagenet2012 only; --dataset="
                      f"{f.dataset} keeps its images' own size")
  if f.norm not in cfg.NORMS:
    raise ConfigError(f"unknown --norm={f.norm!r}; choose one of {', '.join(cfg.NORMS)}")

  def radius(name):  # A radius flag, or its default under --norm.
    value = f[name].value
    return parse_radius(name, RADIUS_DEFAULTS[f.norm][name] if value is None else value)

  attack = cfg.AttackConfig(
      steps=f.pgd_steps, step_ratio=f.pgd_step_ratio,
      min_step=radius("pgd_min_step"),
      random_start=f.pgd_random_start, bn_mode=f.attack_bn_mode,
      jit_compile=_jit_mode(f.jit_compile) == "attack", name=f.train_attack,
      norm=f.norm)
  if f.train_attack == "fgsm_rs":  # Its own step rule (config.FGSM_RS).
    attack = cfg.AttackConfig.fgsm_rs(bn_mode=attack.bn_mode, norm=f.norm,
                                      jit_compile=attack.jit_compile)
  config = cfg.Config(
      output_dir=_path(f.output_dir),
      seed=f.seed,
      export=f.export,
      overwrite=f.overwrite,
      export_model=f.export_model,
      early_stopping_weights=f.early_stopping_weights,
      data=cfg.DataConfig(
          dataset=f.dataset, data_dir=_path(f.data_dir), manual_dir=_path(f.manual_dir),
          npz_path=_path(f.npz_path), download=f.download,
          holdout_fraction=f.holdout_fraction, augment=f.augment,
          augment_pad=f.augment_pad,
          batch_size=f.batch_size, eval_batch_size=f.eval_batch_size,
          shuffle_buffer=f.shuffle_buffer,
          max_train_examples=f.max_train_examples,
          max_eval_examples=f.max_test_examples, image_size=f.image_size,
          seed=f.seed, num_classes=f.num_classes,
          synthetic_like=f.synthetic_like,
          synthetic_shape=_int_list("synthetic_shape", f.synthetic_shape),
          synthetic_train_examples=f.synthetic_train_examples,
          synthetic_test_examples=f.synthetic_test_examples,
          validation_fraction=f.validation_fraction),
      model=cfg.ModelConfig(name=f.model, depth=f.wrn_depth, width=f.wrn_width,
                            sync_batchnorm=f.sync_batchnorm, dropout=f.dropout),
      attack=attack,
      method=cfg.MethodConfig(
          method=f.method, eps=radius("eps"),
          warmup_epochs=f.warmup_epochs, gamma=radius("gamma"),
          beta=f.beta, eps_max=radius("eps_max"),
          cheap_beta=f.cheap_beta, cheap_signal=f.cheap_signal,
          s_minus=f.s_minus,
          loss=f.loss, trades_beta=f.trades_beta, mart_beta=f.mart_beta,
          eps_ramp_epochs=f.eps_ramp_epochs, **_probe_settings(f, attack)),
      train=cfg.TrainConfig(
          epochs=f.epochs, optimizer=f.optimizer, learning_rate=f.learning_rate,
          momentum=f.momentum, weight_decay=f.weight_decay,
          weight_decay_type=f.weight_decay_type,
          lr_boundaries=_int_list("lr_boundaries", f.lr_boundaries),
          lr_decay=f.lr_decay, lr_schedule=f.lr_schedule, ema_decay=f.ema_decay,
          strategy=f.strategy,
          num_virtual_devices=f.num_virtual_devices, precision=f.precision,
          jit_compile=_jit_mode(f.jit_compile),
          steps_per_execution=f.steps_per_execution,
          keep_checkpoints=f.keep_checkpoints, verbose=f.verbose),
      eval=cfg.EvalConfig(
          eps=radius("eval_eps"), steps=f.eval_pgd_steps,
          step_size=radius("eval_step_size"),
          every_epochs=f.eval_every_epochs, max_examples=f.val_examples),
  )
  return cfg.validate(config)
