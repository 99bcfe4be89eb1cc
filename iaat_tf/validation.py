"""The rules of a training run that span several fields or sections.

Each field's own choices and bounds are checked when its section is built
(`options.Section`); `validate` checks everything across fields, before
anything is written to disk, each rule once, each as a one-line
`ConfigError`. The trainer calls the two rules it depends on
(`check_attack_bn_mode`, `check_probe_source`) itself, for configs built in
Python without `validate`. `check_paths` checks the files and folders a
run names (they exist, or can be made), without TensorFlow: the command
line calls both before TensorFlow starts.
"""

import os

from iaat_tf.config import (
  ADAPTIVE_METHODS,
  FAST_METHODS,
  FGSM_RS,
  SYNTHETIC_LIKE,
  AttackConfig,
  Config,
  MethodConfig,
)
from iaat_tf.options import check

# The datasets read from tensorflow-datasets' --data_dir.
TFDS_DATASETS = ("mnist", "cifar10", "cifar100", "imagenet2012")


def _check_eps(name: str, value: float, norm: str = "linf") -> None:
  if norm == "l2":  # Any L2 length is a radius; only eps_max may be inf.
    check(
      value >= 0 and (value < float("inf") or name == "eps_max"),
      f"--{name}={value} is out of range: an L2 radius is >= 0 and finite",
    )
    return
  check(
    0.0 <= value <= 1.0,
    f"--{name}={value} is out of range: radii are on [0, 1] images, "
    f"so use 0 <= {name} <= 1 (e.g. 8/255 = {8 / 255:.5f}; L2 radii need --norm=l2)",
  )


def check_attack_bn_mode(attack: AttackConfig, method: MethodConfig) -> None:
  """ConfigError for settings that train-mode BatchNorm attacks would change.

  Under `--attack_bn_mode=train` a forward pass normalises with the
  statistics of the batch it sees. The fast Algorithm 2 probes run it on a
  subset (`probe_only_needed`, `probe_early_stop=example`) or on a doubled
  batch (`probe_batched`): each example's outcome would depend on which
  other examples are still undecided, and every such pass would move the
  running statistics towards a subset's. Refused rather than silently
  changing the experiment (the trainer calls this too).
  """
  if attack.bn_mode != "train" or method.method != "iaat":
    return
  subset = [
    name
    for name, on in (
      ("--probe_only_needed", method.probe_only_needed),
      ("--probe_early_stop=example", method.probe_early_stop == "example"),
      ("--probe_batched", method.probe_batched),
    )
    if on
  ]
  check(
    not subset,
    f"{' and '.join(subset)} (e.g. --alg2_preset=fast) run BatchNorm on a "
    "subset or a doubled batch, which --attack_bn_mode=train would make part "
    "of every outcome and of the running statistics; use "
    "--attack_bn_mode=inference or --alg2_preset=exact",
  )


def check_probe_source(method: MethodConfig) -> None:
  """ConfigError when `probe_source="training"` has no PGD attack to reuse.

  Its outcomes are those of the cross-entropy PGD training attack; TRADES
  trains on a KL attack (the trainer calls this too).
  """
  check(
    not (method.method == "iaat" and method.probe_source == "training" and method.loss == "trades"),
    "--probe_source=training reads Algorithm 2's outcomes from the "
    "cross-entropy PGD training attack, but --loss=trades trains on a KL "
    "attack; use --loss=ce or mart, or --probe_source=attacks",
  )


def validate(config: Config) -> Config:
  """Raises ConfigError with a one-line message for any bad setting."""
  d, m, a, me, t, e = (
    config.data,
    config.model,
    config.attack,
    config.method,
    config.train,
    config.validation,
  )
  check(bool(config.output_dir), "--output_dir is required")
  # Each field's choices and bounds were checked when its section was built
  # (options.Section); what follows spans fields and sections.
  for name, value in (
    ("eps", me.eps),
    ("eps_max", me.eps_max),
    ("gamma", me.gamma),
    ("eval_eps", e.eps),
    ("pgd_min_step", a.min_step),
    ("eval_step_size", e.step_size),
  ):
    _check_eps(name, value, a.norm)
  check(me.eps <= me.eps_max, f"--eps={me.eps} is larger than --eps_max={me.eps_max}")
  check(
    not (t.jit_compile == "step" and t.strategy != "default"),
    f"--jit_compile=step needs --strategy=default (the eps-table write "
    f"under --strategy={t.strategy} is a cross-replica step that XLA "
    "cannot compile); use --jit_compile=attack",
  )
  check(
    not (me.method in ADAPTIVE_METHODS and me.eps_ramp_epochs > me.warmup_epochs),
    f"--eps_ramp_epochs={me.eps_ramp_epochs} is longer than "
    f"--warmup_epochs={me.warmup_epochs}: under {me.method} the ramp "
    "applies to the warmup radius only",
  )
  check(
    not (t.jit_compile == "step" and (me.probe_early_stop == "example" or me.probe_only_needed)),
    "--probe_early_stop=example and --probe_only_needed run the probes on "
    "a data-dependent subset of the batch, which --jit_compile=step cannot "
    "compile; use --jit_compile=attack or none, or --probe_early_stop=batch",
  )
  if me.method == "iaat" and me.probe_source == "training":
    others = [
      flag
      for flag, on in (
        ("--probe_steps", me.probe_steps not in (0, a.steps)),
        ("--probe_step_ratio", me.probe_step_ratio != 0),
        ("--probe_batched", me.probe_batched),
        ("--probe_early_stop", me.probe_early_stop != "none"),
        ("--probe_only_needed", me.probe_only_needed),
      )
      if on
    ]
    check(
      not others,
      f"--probe_source=training runs no probe attacks, so "
      f"{' and '.join(others)} would do nothing; drop them (its one setting "
      "is --probe_extra_steps)",
    )
  check_probe_source(me)
  check(
    t.ema_decay > 0 or "ema" not in (config.export_model, config.early_stopping_weights),
    "--export_model=ema and --early_stopping_weights=ema need a weight "
    "average: set --ema_decay (e.g. 0.999)",
  )
  check(
    config.early_stopping_weights == "raw" or d.validation_fraction > 0,
    "--early_stopping_weights=ema watches the held-out validation split: set --validation_fraction",
  )
  if a.name == "fgsm_rs":
    check(
      all(getattr(a, k) == v for k, v in FGSM_RS.items()),
      f"an fgsm_rs attack is {FGSM_RS}; build it with AttackConfig.fgsm_rs()",
    )
    check(
      me.method in FAST_METHODS,
      f"--train_attack=fgsm_rs trains --method={' or '.join(FAST_METHODS)} "
      f"(pgd_at: FGSM-RS; iaat_cheap: the cheap rule on it), not {me.method}",
    )
    check(
      me.loss == "ce",
      f"--train_attack=fgsm_rs is a cross-entropy attack; --loss={me.loss} crafts its own",
    )
  check(
    not (me.s_minus == "adversarial" and me.method != "iaat"),
    f"--s_minus=adversarial is the authors' Algorithm 2 code (--method=iaat); "
    f"under --method={me.method} clean-misclassified examples have radius 0, "
    "so use --s_minus=clean",
  )
  check(
    all(b > 0 for b in t.lr_boundaries) and list(t.lr_boundaries) == sorted(t.lr_boundaries),
    f"--lr_boundaries={list(t.lr_boundaries)} must be increasing positive epochs",
  )
  check(
    t.lr_schedule != "cyclic"
    or (t.optimizer == "sgd" and t.weight_decay_type == "coupled" and t.momentum >= 0.8),
    "--lr_schedule=cyclic cycles SGD's momentum between 0.8 and --momentum "
    "as PyTorch's CyclicLR: it needs --optimizer=sgd, "
    "--weight_decay_type=coupled and --momentum >= 0.8",
  )
  check(
    not (t.lr_boundaries and t.lr_schedule != "step"),
    f"--lr_boundaries applies to --lr_schedule=step, not {t.lr_schedule}",
  )
  if m.name == "authors_wrn":
    check(
      m.depth >= 8 and (m.depth - 2) % 6 == 0,
      f"--wrn_depth={m.depth}: the authors' WRN depth must be 6n+2 (32: 5 blocks per stage)",
    )
    check(
      m.dropout == 0, "--model=authors_wrn has no dropout (their network has none); use --dropout=0"
    )
  check(
    m.depth >= 10 and ((m.depth - 4) % 6 == 0 or (m.depth - 2) % 6 == 0),
    f"--wrn_depth={m.depth}: WideResNet depth must be 6n+4 (28, 34) or Madry's 6n+2 naming (32)",
  )
  check_attack_bn_mode(a, me)
  check(
    not (m.sync_batchnorm and a.bn_mode == "train"),
    "--sync_batchnorm with --attack_bn_mode=train is not supported "
    "(cross-replica BatchNorm inside the attack loop); use "
    "--attack_bn_mode=inference",
  )
  check(
    d.num_classes == 0 or d.num_classes >= 2,
    f"--num_classes={d.num_classes} must be >= 2 (or 0: from the dataset)",
  )
  if d.dataset == "synthetic":
    check(
      d.synthetic_like in SYNTHETIC_LIKE,
      f"unknown --synthetic_like={d.synthetic_like!r}; choose one of {', '.join(SYNTHETIC_LIKE)}",
    )
    check(
      min(d.synthetic_train_examples, d.synthetic_test_examples) >= 1,
      "--synthetic_train_examples and --synthetic_test_examples must be >= 1",
    )
    check(
      not d.synthetic_shape
      or (
        len(d.synthetic_shape) == 3
        and d.synthetic_shape[-1] in (1, 3)
        and min(d.synthetic_shape) >= 1
      ),
      f"--synthetic_shape={','.join(map(str, d.synthetic_shape))} must be H,W,C with C in (1, 3)",
    )
  check(d.dataset != "npz" or bool(d.npz_path), "--dataset=npz needs --npz_path=FILE.npz")
  if d.dataset in TFDS_DATASETS:
    check(
      bool(d.data_dir) or d.download,
      f"--dataset={d.dataset} reads tfds data: pass --data_dir=DIR "
      "(or --download to let tfds fetch it)",
    )
  return config


def check_writable_dir(flag: str, path: str) -> None:
  """ConfigError unless `path` is a writable folder or can be made one."""
  if os.path.exists(path):
    check(os.path.isdir(path), f"--{flag}={path} is a file, not a folder")
    check(os.access(path, os.W_OK), f"--{flag}={path} is not writable")
    return
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  check(
    os.path.isdir(parent) and os.access(parent, os.W_OK),
    f"cannot create --{flag}={path}: {parent} is "
    + ("not writable" if os.path.isdir(parent) else "a file"),
  )


def check_paths(config: Config, data: bool = True) -> Config:
  """ConfigError (one line) for a file or folder the run names that is
  missing or cannot be written (`data`: also the data's, which a run on
  another machine reads there); opens no file, imports no TensorFlow."""
  d = config.data
  check_writable_dir("output_dir", config.output_dir)
  if not data:
    return config
  if d.dataset == "npz":
    check(os.path.isfile(d.npz_path or ""), f"--npz_path={d.npz_path} does not exist")
  if d.dataset in TFDS_DATASETS and d.data_dir and not d.download:
    check(
      os.path.isdir(d.data_dir),
      f"--data_dir={d.data_dir} does not exist (pass the directory holding "
      "tfds data, or --download to let tfds fetch it)",
    )
  return config
