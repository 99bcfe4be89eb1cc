"""The replication paths against numbers computed by the references' own code.

The fixtures in tests/golden/ were made once by tests/golden/make_golden.py,
which runs the references' PyTorch code (commits in tests/golden/SOURCES.json)
on tiny fixed inputs; CI needs no PyTorch. Each test feeds our code the same
weights, inputs and (injected) random starts and asserts the same outputs:

* the authors' WRN (models/wideresnet.py): logits, input gradient of the
  batch-mean CE and BatchNorm's running statistics, eval and train mode;
* one step of the authors' IAAT trainer (trainers/trainer_adaptive.py) on a
  tiny WRN, in the warmup and after it (Algorithm 2's probes, train-mode
  BatchNorm attacks, S- at the stored radius, coupled weight decay): the new
  eps table, weights and running statistics;
* fra31's APGD (autopgd_base.py, attack_single_run) on a tiny MLP: every
  point the model is evaluated at, for the CE and the DLR loss;
* every flagfile's learning rate (and momentum) against its source's own
  schedule (the authors' MultiStepLR, TRADES' adjust_learning_rate,
  fast_adversarial's CyclicLR and MNIST cycle).

One difference is known and pinned: PyTorch updates BatchNorm's running
variance with the unbiased batch variance, Keras with the biased one (a
factor m / (m - 1), m values per channel); the running means agree exactly.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from iaat_tf import attacks
from iaat_tf.attacks import apgd, noise, objectives
from iaat_tf.cli import flags_config
from iaat_tf.config import AttackConfig, MethodConfig, TrainConfig
from iaat_tf.models import authors_wrn
from iaat_tf.training import optimizers, schedules
from iaat_tf.training.trainer import AdversarialTrainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "golden")


def _load(name):
  with np.load(os.path.join(GOLDEN, name)) as data:
    return {k: data[k] for k in data.files}


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


def _tiny_wrn():
  return authors_wrn.authors_wrn((8, 8, 3), 10, depth=8, width=1)


def _layer_name(torch_name: str) -> str:
  return torch_name.replace(".", "_")


def _set_state(model, state):
  """Their state_dict (torch names, OIHW kernels) into our Keras WRN."""
  for key, value in state.items():
    name, _, part = key.rpartition(".")
    if key.endswith("num_batches_tracked"):
      continue
    if not name or part.startswith("conv"):  # A conv kernel: "conv0", "...conv1".
      model.get_layer(_layer_name(key)).kernel.assign(np.transpose(value, (2, 3, 1, 0)))
      continue
    layer = model.get_layer(_layer_name(name))
    target = {
      "running_mean": layer.moving_mean,
      "running_var": layer.moving_variance,
      "weight": getattr(layer, "gamma", None),
      "bias": getattr(layer, "beta", None),
    }[part]
    target.assign(value)


def _state_of(data, prefix):
  return {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}


def _values_per_channel(model, bn_name, batch):
  shape = model.get_layer(bn_name).input.shape
  return batch * shape[1] * shape[2]


def _check_state(model, expected, before, batch, updates=1):
  """Weights equal; running means equal; running variances equal up to the
  unbiased/biased factor (bounded here by `updates` train-mode passes)."""
  for key, value in expected.items():
    name, _, part = key.rpartition(".")
    if part == "num_batches_tracked":
      continue
    if not name or part.startswith("conv"):
      got = np.transpose(model.get_layer(_layer_name(key)).kernel.numpy(), (3, 2, 0, 1))
      np.testing.assert_allclose(got, value, rtol=1e-4, atol=2e-6, err_msg=key)
      continue
    layer = model.get_layer(_layer_name(name))
    if part == "running_mean":
      np.testing.assert_allclose(
        layer.moving_mean.numpy(), value, rtol=1e-4, atol=2e-6, err_msg=key
      )
    elif part == "running_var":
      m = _values_per_channel(model, _layer_name(name), batch)
      got = layer.moving_variance.numpy()
      if updates == 0:  # Eval mode: unchanged.
        np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=key)
      elif updates == 1:  # Exactly: ours = 0.9 old + 0.1 * biased = ... * (m-1)/m.
        old = before[key]
        unbiased = (value - 0.9 * old) / 0.1
        np.testing.assert_allclose(
          got, 0.9 * old + 0.1 * unbiased * (m - 1) / m, rtol=1e-4, atol=2e-6, err_msg=key
        )
      else:  # Each pass's difference is at most a factor 1/(m-1).
        np.testing.assert_allclose(got, value, rtol=1.5 / (m - 1), err_msg=key)
    else:
      weight = layer.gamma if part == "weight" else layer.beta
      np.testing.assert_allclose(weight.numpy(), value, rtol=1e-4, atol=2e-6, err_msg=key)


def test_sources_are_recorded():
  with open(os.path.join(GOLDEN, "SOURCES.json")) as f:
    sources = json.load(f)
  for repo in (
    "yogeshbalaji/Instance_Adaptive_Adversarial_Training",
    "fra31/auto-attack",
    "yaodongyu/TRADES",
    "locuslab/fast_adversarial",
  ):
    assert len(sources[repo]) == 40, repo


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_authors_wrn_logits_gradient_and_running_statistics(mode):
  g = _load("authors_wrn.npz")
  model = _tiny_wrn()
  before = _state_of(g, "state/")
  _set_state(model, before)
  x, y = tf.constant(_nhwc(g["x"])), tf.constant(g["y"])
  with tf.GradientTape() as tape:
    tape.watch(x)
    logits = model(x, training=mode == "train")
    loss = tf.reduce_mean(attacks.cross_entropy_loss(logits, y))
  grad = tape.gradient(loss, x).numpy()
  np.testing.assert_allclose(logits.numpy(), g[f"{mode}/logits"], rtol=1e-4, atol=1e-5)
  ref = _nhwc(g[f"{mode}/grad"])
  np.testing.assert_allclose(grad, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
  _check_state(
    model, _state_of(g, f"{mode}/after/"), before, batch=16, updates=int(mode == "train")
  )


def _inject_noise(monkeypatch, by_salt):
  """Our keyed random starts replaced by the noise fed to the reference."""

  def fake(shape, index, step, salt=0, seed=0):
    del shape, index, step, seed
    return tf.constant(by_salt[int(salt)])

  monkeypatch.setattr(noise, "per_example_uniform", fake)


@pytest.mark.parametrize("phase", ["warmup", "adaptive"])
def test_one_iaat_step_of_the_authors_trainer(phase, monkeypatch):
  g = _load("authors_iaat_step.npz")
  s = json.loads(str(g["settings"]))
  noise = [_nhwc(n) for n in g["noise"]]
  _inject_noise(
    monkeypatch,
    {
      int(attacks.Salt.PROBE_SAME): noise[0],
      int(attacks.Salt.PROBE_UP): noise[1],
      int(attacks.Salt.TRAIN): noise[2],
    },
  )
  keras.utils.set_random_seed(0)
  model = _tiny_wrn()
  before = _state_of(g, "state/")
  _set_state(model, before)
  trainer = AdversarialTrainer(
    model,
    num_train_examples=len(g["table"]),
    method=MethodConfig(
      method="iaat",
      eps=s["attack_eps"],
      warmup_epochs=s["warmup"],
      gamma=s["gamma"],
      beta=s["beta"],
      eps_max=1.0,
      s_minus="adversarial",
    ),
    attack=AttackConfig(
      steps=s["attack_steps"], step_ratio=0.0, min_step=s["attack_lr"], bn_mode="train"
    ),
    steps_per_epoch=1,
  )
  trainer.compile(
    optimizer=optimizers.CoupledDecaySGD(s["lr"], momentum=0.9, l2_decay=s["weight_decay"]),
    jit_compile=False,
  )
  trainer.eps_table.assign(g["table"])
  data = tf.data.Dataset.from_tensors(({"image": _nhwc(g["x"]), "index": g["index"]}, g["y"]))
  epoch = 0 if phase == "warmup" else 1
  trainer.fit(data, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
  np.testing.assert_allclose(trainer.eps_table.numpy(), g[f"{phase}/table"], rtol=1e-5, atol=1e-7)
  # The fixture takes every branch: in the warmup S+ (the warmup radius)
  # and S- (0); after it each of Algorithm 2's (make_golden.py reads them
  # from the authors' stored radii).
  clean_ok = g["clean_ok"]
  assert clean_ok.any() and not clean_ok.all()
  if phase == "adaptive":
    names = [str(n) for n in g["branch_names"]]
    assert names == ["s_minus", "up", "same", "down", "clip"]
    assert sorted(set(g["adaptive/branch"].tolist())) == list(range(len(names)))
  passes = 2 + 1 * s["attack_steps"] if phase == "warmup" else 4 + 3 * s["attack_steps"]
  _check_state(model, _state_of(g, f"{phase}/after/"), before, batch=16, updates=passes)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_visits_the_points_of_the_reference(loss, monkeypatch):
  g = _load("apgd.npz")
  w1, b1, w2, b2 = (tf.constant(g[k]) for k in ("w1", "b1", "w2", "b2"))
  seen = []

  def logits_fn(x):
    seen.append(x.numpy())
    hidden = tf.tanh(tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), w1) + b1)
    return tf.matmul(hidden, w2) + b2

  _inject_noise(monkeypatch, {0: _nhwc(g[f"{loss}/noise"])})
  x, y = _nhwc(g["x"]), g["y"]
  objective = objectives.UNTARGETED[loss]
  result = apgd._single_run(  # pylint: disable=protected-access
    logits_fn,
    tf.constant(x),
    tf.constant(y),
    tf.fill([len(y)], float(g["eps"])),
    n_iter=int(g["n_iter"]),
    objective=lambda z: objective(z, tf.constant(y)),
    rho=0.75,
    random_start=True,
    index=tf.range(len(y), dtype=tf.int64),
    step=0,
    salt=0,
    seed=0,
  )
  ref = np.stack([_nhwc(v) for v in g[f"{loss}/iterates"]])
  seen = np.stack(seen)
  assert len(seen) == len(ref) == int(g["n_iter"]) + 1
  # The fixture holds an example whose first step-size decision depends on
  # the first window's first comparison (the reference's: loss > 0).
  assert g[f"{loss}/first_window_pinned"].any()
  # Every example's first 40 iterations (two checkpoints) are the
  # reference's. Later, a step-size decision can rest on a loss tie that
  # float32 rounding breaks differently in the two frameworks: for CE,
  # sign(d CE / dx) of the most confident examples is rounding noise, so
  # only the first 40 iterations are compared; for DLR, 99% of the examples
  # follow the reference to the end (1 of 256 here parts at iteration 80, on
  # a best-loss tie to 6 digits).
  np.testing.assert_allclose(seen[:41], ref[:41], atol=1e-5)
  if loss == "dlr":
    same = np.abs(seen - ref).reshape(len(ref), len(g["y"]), -1).max((0, 2)) < 1e-5
    assert same.mean() >= 0.99
    robust = result.robust.numpy()
    assert (robust == g[f"{loss}/robust"].astype(bool))[same].all()


# -- schedules -----------------------------------------------------------------


def _train_config(flagfile, monkeypatch):
  monkeypatch.chdir(REPO)
  with flagsaver.flagsaver():
    flags.FLAGS(["iaat_tf.main", f"--flagfile=flags/{flagfile}"])
    return flags_config.config_from_flags(flags.FLAGS).train


def _per_step(schedule, steps):
  return np.array([float(schedule(s)) if callable(schedule) else schedule for s in range(steps)])


# Flagfile -> (golden key, epochs the golden covers). The first step of every
# epoch is compared (a per-epoch schedule), plus every step for per-step ones.
EPOCH_SCHEDULES = {
  "cifar10_wrn_iaat.flags": "authors_iaat",
  "cifar10_wrn_iaat_cheap.flags": "authors_iaat",
  "cifar10_wrn_iaat_l2.flags": "authors_iaat",
  "cifar100_wrn_iaat.flags": "authors_iaat",
  "cifar10_wrn_pgd_at.flags": "authors_pgd_at",
  "cifar10_wrn_trades.flags": "trades",
  "cifar10_wrn_iaat_trades.flags": "trades",
}


@pytest.mark.parametrize("flagfile", sorted(EPOCH_SCHEDULES))
def test_flagfile_schedules_are_their_sources(flagfile, monkeypatch):
  g = _load("schedules.npz")
  expected = g[f"{EPOCH_SCHEDULES[flagfile]}/lr_per_epoch"]
  config = _train_config(flagfile, monkeypatch)
  assert config.epochs == len(expected)
  steps_per_epoch = 3
  lr = schedules.learning_rate(config, steps_per_epoch)
  per_step = _per_step(lr, config.epochs * steps_per_epoch)
  np.testing.assert_allclose(per_step, np.repeat(expected, steps_per_epoch), rtol=1e-6)


# Flagfiles whose schedule is ours, as their comments state it: a constant
# rate, or Goyal et al.'s ImageNet steps (0.1 per 256 images, x0.1 at 30/60/80).
OWN_SCHEDULES = {
  **{
    name: lambda e: 0.05
    for name in (
      "quickstart.flags",
      "quickstart_pgd_at.flags",
      "quickstart_trades.flags",
      "quickstart_iaat_trades.flags",
      "quickstart_l2.flags",
      "quickstart_pgd_at_l2.flags",
    )
  },
  "imagenet_resnet50_iaat.flags": lambda e: (
    0.1 * 512 / 256 * 0.1 ** sum(e >= b for b in (30, 60, 80))
  ),
}
ONECYCLE = ("quickstart_fgsm_rs.flags", "quickstart_iaat_fgsm.flags")


def test_every_flagfile_schedule_is_pinned():
  shipped = {os.path.basename(p) for p in os.listdir(os.path.join(REPO, "flags"))}
  assert shipped == set(EPOCH_SCHEDULES) | set(OWN_SCHEDULES) | set(ONECYCLE)


@pytest.mark.parametrize("flagfile", sorted(OWN_SCHEDULES))
def test_flagfile_schedules_are_what_they_say(flagfile, monkeypatch):
  config = _train_config(flagfile, monkeypatch)
  expected = [OWN_SCHEDULES[flagfile](e) for e in range(config.epochs)]
  lr = schedules.learning_rate(config, 2)
  per_step = _per_step(lr, config.epochs * 2)
  np.testing.assert_allclose(per_step, np.repeat(expected, 2), rtol=1e-6)


@pytest.mark.parametrize("epochs,batches", [(3, 7), (15, 10)])
def test_cyclic_is_fast_adversarials_cifar_cycle(epochs, batches):
  g = _load("schedules.npz")
  config = TrainConfig(learning_rate=0.2, momentum=0.9, epochs=epochs, lr_schedule="cyclic")
  key = f"fast_cifar_{epochs}x{batches}"
  steps = epochs * batches
  np.testing.assert_allclose(
    _per_step(schedules.learning_rate(config, batches), steps), g[f"{key}/lr_per_step"], atol=1e-7
  )
  np.testing.assert_allclose(
    _per_step(schedules.momentum(config, batches), steps), g[f"{key}/momentum_per_step"], atol=1e-7
  )
  # The optimizer steps with the cycled momentum (PyTorch's buf = m_t buf + g).
  optimizer = optimizers.make_optimizer(config, batches)
  var = tf.Variable([0.0])
  buf, p = 0.0, 0.0
  for t in range(4):
    grad = 1.0 + t
    optimizer.apply_gradients([(tf.constant([grad]), var)])
    buf = g[f"{key}/momentum_per_step"][t] * buf + (grad + config.weight_decay * p)
    p -= g[f"{key}/lr_per_step"][t] * buf
    assert var.numpy()[0] == pytest.approx(p, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("flagfile", ONECYCLE)
def test_onecycle_flagfiles_are_fast_adversarials_mnist_cycle(flagfile, monkeypatch):
  batches = 22
  g = _load("schedules.npz")
  config = _train_config(flagfile, monkeypatch)
  assert config.lr_schedule == "onecycle" and config.epochs == 20
  expected = g[f"fast_mnist_20x{batches}/lr_per_step"] / 0.05 * config.learning_rate
  got = _per_step(schedules.learning_rate(config, batches), 20 * batches)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)


def test_onecycle_rounds_the_peak_epoch_as_the_mnist_script():
  g = _load("schedules.npz")  # epochs 3: the peak at epoch 3 * 2 // 5 = 1, not 1.2.
  config = TrainConfig(learning_rate=0.05, epochs=3, lr_schedule="onecycle")
  got = _per_step(schedules.learning_rate(config, 5), 15)
  np.testing.assert_allclose(got, g["fast_mnist_3x5/lr_per_step"], rtol=1e-5, atol=1e-8)
