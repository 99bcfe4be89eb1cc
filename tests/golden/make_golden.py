"""Computes the golden numbers of tests/training/golden_test.py from the references' own code.

Run once, by hand, outside CI (it needs PyTorch; CI and the suite do not):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    /tmp/torchvenv/bin/python tests/golden/make_golden.py \
        --iaat=PATH/Instance_Adaptive_Adversarial_Training \
        --autoattack=PATH/auto-attack [--only=authors_iaat_step,...]

where each path is a checkout of the public repository (yogeshbalaji/
Instance_Adaptive_Adversarial_Training, fra31/auto-attack). Their code is
imported from those checkouts and run as it is; nothing of it is copied here.
Where a reference's formula lives inside a script that cannot be imported
(TRADES' adjust_learning_rate, fast_adversarial's MNIST lambda), it is
re-stated below with the file and line it comes from. Writes, beside this
file, one .npz per reference and SOURCES.json (the commits read).

Random starts are injected: the script draws uniform noise with NumPy, feeds
it to the reference through a patched `torch.rand`, and stores it, so the
test can feed the same noise to our attacks.
"""

import argparse
import json
import os
import subprocess
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def _commit(path):
  commit_file = os.path.join(path, "COMMIT")
  if os.path.exists(commit_file):
    return open(commit_file).read().strip()
  return subprocess.run(
    ["git", "-C", path, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
  ).stdout.strip()


class _InjectedRand:
  """A stand-in for torch.rand that returns pre-drawn arrays in order."""

  def __init__(self, arrays):
    self.arrays, self.calls = list(arrays), 0

  def __call__(self, *size, dtype=None, device=None, **kwargs):
    del device, kwargs
    size = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
    u = self.arrays[self.calls]
    assert tuple(u.shape) == tuple(size), (u.shape, size)
    self.calls += 1
    return torch.from_numpy(u).to(dtype or torch.float32)


def _stub_unused_imports():
  """Stand-ins for what their packages import at the top but the code run
  here never calls (torchvision transforms and datasets, PIL, foolbox and ART
  in attacks/attacks.py, and `zero_gradients`, gone from newer PyTorch)."""

  def placeholder(attr):
    if attr.startswith("__"):
      raise AttributeError(attr)
    return type(attr, (), {})  # Usable as a base class (VisionDataset).

  for name in (
    "torchvision",
    "torchvision.transforms",
    "torchvision.datasets",
    "torchvision.datasets.vision",
    "torchvision.datasets.utils",
    "PIL",
    "PIL.Image",
    "foolbox",
    "art",
    "art.attacks",
    "art.attacks.evasion",
    "art.attacks.evasion.carlini",
    "art.classifiers",
    "art.classifiers.classifier",
  ):
    if name not in sys.modules:
      module = types.ModuleType(name)
      module.__getattr__ = placeholder
      module.__path__ = []
      sys.modules[name] = module
  gradcheck = sys.modules["torch.autograd.gradcheck"]  # The module, not the function.
  if not hasattr(gradcheck, "zero_gradients"):
    gradcheck.zero_gradients = lambda x: None


def _state(model):
  return {f"state/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _tiny_wrn(iaat_path, seed):
  sys.path.insert(0, iaat_path)
  import models  # pylint: disable=import-outside-toplevel

  torch.manual_seed(seed)
  return models.WRN(depth=8, width=1, num_classes=10)


def _teacher_data(rng, n):
  """Images in [0.25, 0.75] (a random start of radius <= 0.2 stays in [0, 1],
  where the references do not clip it and we do) and labels of a fixed
  random linear teacher, learnable by the tiny WRN."""
  x = rng.uniform(0.25, 0.75, size=(n, 3, 8, 8)).astype(np.float32)
  w = np.random.RandomState(99).randn(3 * 8 * 8, 10).astype(np.float32)
  y = np.argmax((x.reshape(n, -1) - 0.5) @ w, axis=1).astype(np.int64)
  return x, y


def wrn_golden(iaat_path):
  """Their WRN: logits, input gradient of the batch-mean CE and BatchNorm's
  running statistics, for fixed weights, in eval and in train mode."""
  rng = np.random.RandomState(0)
  model = _tiny_wrn(iaat_path, seed=0)
  model.train()
  with torch.no_grad():  # Move the running statistics off their start.
    for _ in range(3):
      model(torch.from_numpy(rng.uniform(0, 1, (16, 3, 8, 8)).astype(np.float32)))
  x = rng.uniform(0, 1, (16, 3, 8, 8)).astype(np.float32)
  y = rng.randint(0, 10, 16).astype(np.int64)
  out = {"x": x, "y": y, **_state(model)}
  for mode in ("eval", "train"):
    model.train(mode == "train")
    xt = torch.from_numpy(x).requires_grad_()
    logits = model(xt)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    out[f"{mode}/logits"] = logits.detach().numpy()
    out[f"{mode}/grad"] = xt.grad.numpy()
    out.update({f"{mode}/after/{k[6:]}": v for k, v in _state(model).items()})
  return out


BRANCHES = ("s_minus", "up", "same", "down", "clip")


def algorithm2_branches(p, table, clean_ok, gamma, beta):
  """[B] index into BRANCHES of the rule each example took, read from the
  stored radius: table = beta * new + (1 - beta) * p with new one of
  p + gamma (up), p (same), p - gamma (down), 0 (clip: p - gamma < 0, or
  S-: clean-misclassified)."""
  new = (table - (1 - beta) * p) / beta
  out = np.full(len(p), -1)
  for i, (pi, ni, ok) in enumerate(zip(p, new, clean_ok)):
    if not ok:
      out[i] = 0 if abs(ni) < 1e-6 else -1
      continue
    for code, value in ((1, pi + gamma), (2, pi), (3, pi - gamma), (4, 0.0)):
      if abs(ni - value) < 1e-6 and (code != 4 or pi < gamma):
        out[i] = code
        break
  assert (out >= 0).all(), (p, new, clean_ok)
  return out


def iaat_step_golden(iaat_path):
  """One step of their TrainerAdaptive.train() on a tiny WRN, run as it is
  (CUDA calls, logging, checkpoints and evaluation stubbed out): once in the
  warmup, once after it (Algorithm 2's two probes and the training attack).
  The radius table and the random starts are drawn until the adaptive step
  takes every branch of Algorithm 2 (S-, up, same, down, clip at 0) and the
  warmup both of its own (S+ at the warmup radius, S- at 0)."""
  sys.path.insert(0, iaat_path)
  _stub_unused_imports()
  import attacks  # pylint: disable=import-outside-toplevel
  import trainers.trainer_adaptive as ta  # pylint: disable=import-outside-toplevel

  torch.Tensor.cuda = lambda self, *a, **k: self  # CPU only.
  rng = np.random.RandomState(1)
  # Pre-train the tiny WRN on the teacher task so that the batch mixes
  # clean-correct (S+) and clean-misclassified (S-) examples.
  model = _tiny_wrn(iaat_path, seed=1)
  xs, ys = _teacher_data(rng, 512)
  opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9)
  model.train()
  for _ in range(6):
    for i in range(0, 512, 64):
      opt.zero_grad()
      torch.nn.functional.cross_entropy(
        model(torch.from_numpy(xs[i : i + 64])), torch.from_numpy(ys[i : i + 64])
      ).backward()
      opt.step()
  start = {k: v.clone() for k, v in model.state_dict().items()}
  x, y = _teacher_data(rng, 16)
  num_examples = 32
  index = rng.permutation(num_examples)[:16].astype(np.int64)
  # Their epsilon_select judges clean correctness in train mode (batch statistics).
  with torch.no_grad():
    clean_ok = model(torch.from_numpy(x)).argmax(1).numpy() == y
  model.load_state_dict(start)
  settings = dict(
    attack_steps=3,
    attack_lr=2 / 255,
    attack_eps=8 / 255,
    gamma=1.9 / 255,
    beta=0.1,
    warmup=1,
    alg="adv_training",
    lr=0.1,
    weight_decay=5e-4,
  )
  for draw in range(1, 500):
    pick = np.random.RandomState(draw)
    # Radii around gamma (0.0075): small ones clip at 0, larger ones go down,
    # confident examples go up.
    table = pick.choice([0.001, 0.003, 0.005, 0.009, 0.012, 0.02, 0.03], num_examples).astype(
      np.float32
    )
    noise = pick.uniform(0, 1, (3, 16, 3, 8, 8)).astype(np.float32)
    out = {
      "x": x,
      "y": y,
      "index": index,
      "table": table,
      "noise": noise,
      "clean_ok": clean_ok,
      **{f"state/{k}": v.numpy().copy() for k, v in start.items()},
    }
    out["settings"] = np.array(json.dumps(settings))
    _iaat_phases(ta, attacks, model, start, out, settings)
    branch = algorithm2_branches(
      table[index], out["adaptive/table"][index], clean_ok, settings["gamma"], settings["beta"]
    )
    if len(set(branch)) == len(BRANCHES):
      out["adaptive/branch"] = branch
      out["branch_names"] = np.array(BRANCHES)
      out["draw"] = np.array(draw)
      print(
        f"iaat step: draw {draw} takes every branch: "
        + ", ".join(f"{n} {int((branch == i).sum())}" for i, n in enumerate(BRANCHES))
      )
      return out
  raise RuntimeError("no draw took every branch of Algorithm 2")


def _iaat_phases(ta, attacks, model, start, out, settings):
  """Their trainer's step in the warmup and after it, from `start`."""
  table, noise = out["table"], out["noise"]
  x, y, index = out["x"], out["y"], out["index"]
  for phase, epoch in (("warmup", 0), ("adaptive", 1)):
    model.load_state_dict(start)
    trainer = ta.TrainerAdaptive.__new__(ta.TrainerAdaptive)
    trainer.args = types.SimpleNamespace(nepochs=epoch + 1, **settings)
    trainer.model = model
    trainer.optimizer = torch.optim.SGD(
      model.parameters(), settings["lr"], momentum=0.9, weight_decay=settings["weight_decay"]
    )
    trainer.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
      trainer.optimizer, milestones=[70, 90, 100], gamma=0.2
    )
    trainer.epoch = epoch
    trainer.epsilon_memory = torch.from_numpy(table.copy())
    trainer.attacker = attacks.PGDAttackerAdaptive()
    trainer.train_loader = [(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(index))]
    trainer._log = lambda message: None
    trainer._save_checkpoint = lambda *a, **k: None
    trainer.eval = lambda: 0.0
    trainer.eval_adversarial = lambda: 0.0
    # Their torch.rand calls, in order: warmup: the training attack;
    # after it: the probe at p, the probe at p + gamma, the training attack.
    draws = [noise[2]] if phase == "warmup" else [noise[0], noise[1], noise[2]]
    rand = _InjectedRand(draws)
    real_rand, torch.rand = torch.rand, rand
    try:
      trainer.train()
    finally:
      torch.rand = real_rand
    assert rand.calls == len(draws), rand.calls
    out[f"{phase}/table"] = trainer.epsilon_memory.numpy().copy()
    out.update({f"{phase}/after/{k[6:]}": v for k, v in _state(model).items()})


def _first_window_decisions_differ(losses, start_loss, n_iter):
  """[B] bool: the first checkpoint halves the step under the reference's
  count (its first comparison: first loss > 0) but not under a count that
  compares the first loss with the start's, or the other way round."""
  k = max(int(0.22 * n_iter), 1)
  rest = (losses[1:k] > losses[: k - 1]).sum(0)
  reference = rest + (losses[0] > 0)
  other = rest + (losses[0] > start_loss)
  return (reference <= 0.75 * k) != (other <= 0.75 * k)


def apgd_golden(autoattack_path):
  """fra31's APGD (attack_single_run) on a tiny tanh MLP: every point the
  model is evaluated at (the start and each iterate), per loss. The model
  and noise are drawn until some example's first step-size decision depends
  on what the first window's first comparison is (so the fixture pins it)."""
  sys.path.insert(0, autoattack_path)
  from autoattack import autopgd_base  # pylint: disable=import-outside-toplevel

  n, classes, hidden, eps, n_iter = 256, 10, 32, 0.25, 100
  t = lambda a: torch.from_numpy(a)
  for seed in range(2, 200):
    rng = np.random.RandomState(seed)
    w1 = rng.randn(16, hidden).astype(np.float32)
    b1 = (rng.randn(hidden) * 0.1).astype(np.float32)
    w2 = (rng.randn(hidden, classes) * 0.3).astype(np.float32)
    b2 = (rng.randn(classes) * 0.1).astype(np.float32)
    x = rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32)
    net = lambda z: torch.tanh(z.reshape(z.shape[0], -1) @ t(w1) + t(b1)) @ t(w2) + t(b2)  # noqa: B023  (used in this iteration)
    with torch.no_grad():
      y = net(t(x)).argmax(1).numpy().astype(np.int64)
    out = {
      "w1": w1,
      "b1": b1,
      "w2": w2,
      "b2": b2,
      "x": x,
      "y": y,
      "eps": np.float32(eps),
      "n_iter": n_iter,
      "seed": seed,
    }
    pinned = True
    for loss in ("ce", "dlr"):
      seen = []

      def model(z):  # Used in this iteration only.
        seen.append(z.detach().numpy().copy())  # noqa: B023
        return net(z)  # noqa: B023

      u = rng.uniform(0, 1, x.shape).astype(np.float32)
      attack = autopgd_base.APGDAttack(
        model, n_iter=n_iter, norm="Linf", eps=eps, seed=0, loss=loss, rho=0.75, device="cpu"
      )
      attack.init_hyperparam(t(x))
      criterion = torch.nn.CrossEntropyLoss(reduction="none") if loss == "ce" else attack.dlr_loss
      rand = _InjectedRand([u])
      real_rand, torch.rand = torch.rand, rand
      try:
        x_best, acc, loss_best, _ = attack.attack_single_run(t(x), t(y))
      finally:
        torch.rand = real_rand
      with torch.no_grad():
        losses = np.stack([criterion(net(t(v)), t(y)).numpy() for v in seen])
      differ = _first_window_decisions_differ(losses[1:], losses[0], n_iter)
      pinned &= bool(differ.any())
      out[f"{loss}/noise"] = u
      out[f"{loss}/iterates"] = np.stack(seen)
      out[f"{loss}/x_best"] = x_best.detach().numpy()
      out[f"{loss}/robust"] = acc.numpy()
      out[f"{loss}/loss_best"] = loss_best.detach().numpy()
      out[f"{loss}/first_window_pinned"] = differ
    if pinned:
      return out
  raise RuntimeError("no draw pins the first window's comparison")


def schedule_golden():
  """Learning rates (and momenta) per epoch or per step, from each source."""
  out = {}
  lin = torch.nn.Linear(1, 1)

  def multistep(milestones, epochs):
    opt = torch.optim.SGD(lin.parameters(), 0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)
    lrs = []
    for _ in range(epochs):  # Their loop: train an epoch, then sched.step().
      lrs.append(opt.param_groups[0]["lr"])
      opt.step()
      sched.step()
    return np.array(lrs)

  # IAAT authors: trainers/trainer_adaptive.py (MultiStepLR 70/90/100, x0.2,
  # configs/train_adaptive.json: 110 epochs) and trainers/trainer.py
  # (60/120/160, configs/train.json: 200 epochs).
  out["authors_iaat/lr_per_epoch"] = multistep([70, 90, 100], 110)
  out["authors_pgd_at/lr_per_epoch"] = multistep([60, 120, 160], 200)

  # TRADES, train_trades_cifar10.py lines 137-147 (adjust_learning_rate) and
  # 155 (`for epoch in range(1, args.epochs + 1)`, default --epochs 76, lr 0.1):
  def trades_lr(epoch, lr=0.1):
    if epoch >= 100:
      return lr * 0.001
    if epoch >= 90:
      return lr * 0.01
    if epoch >= 75:
      return lr * 0.1
    return lr

  out["trades/lr_per_epoch"] = np.array([trades_lr(e) for e in range(1, 77)])

  # fast_adversarial, CIFAR10/train_fgsm.py lines 75-88: SGD(momentum 0.9),
  # CyclicLR(base_lr=0, max_lr=lr_max, step_size_up=T/2, step_size_down=T/2),
  # scheduler.step() after every batch (line 129). T = epochs * batches.
  for epochs, batches in ((3, 7), (15, 10)):
    opt = torch.optim.SGD(lin.parameters(), 0.2, momentum=0.9, weight_decay=5e-4)
    steps = epochs * batches
    sched = torch.optim.lr_scheduler.CyclicLR(
      opt, base_lr=0.0, max_lr=0.2, step_size_up=steps / 2, step_size_down=steps / 2
    )
    lrs, moms = [], []
    for _ in range(steps):
      lrs.append(opt.param_groups[0]["lr"])
      moms.append(opt.param_groups[0]["momentum"])
      opt.step()
      sched.step()
    out[f"fast_cifar_{epochs}x{batches}/lr_per_step"] = np.array(lrs)
    out[f"fast_cifar_{epochs}x{batches}/momentum_per_step"] = np.array(moms)

  # fast_adversarial, MNIST/train_mnist.py lines 54 and 70: batch i of epoch
  # e trains at np.interp([e + (i+1)/N], [0, epochs * 2//5, epochs], [0, lr_max, 0]).
  for epochs, batches in ((20, 22), (3, 5)):
    lrs = [
      np.interp([e + (i + 1) / batches], [0, epochs * 2 // 5, epochs], [0, 0.05, 0])[0]
      for e in range(epochs)
      for i in range(batches)
    ]
    out[f"fast_mnist_{epochs}x{batches}/lr_per_step"] = np.array(lrs)
  return out


FIXTURES = ("authors_wrn", "authors_iaat_step", "apgd", "schedules")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iaat", required=True)
  parser.add_argument("--autoattack", default=None, help="needed for apgd")
  parser.add_argument("--trades", default=None, help="for SOURCES.json only")
  parser.add_argument("--fast_adversarial", default=None, help="for SOURCES.json only")
  parser.add_argument(
    "--only",
    default=",".join(FIXTURES),
    help="comma-separated fixtures to (re)write: " + ", ".join(FIXTURES),
  )
  args = parser.parse_args()
  only = args.only.split(",")
  unknown = sorted(set(only) - set(FIXTURES))
  if unknown:
    parser.error(f"unknown --only {unknown}; choose from {', '.join(FIXTURES)}")
  if "apgd" in only and not args.autoattack:
    parser.error("--only=apgd needs --autoattack=PATH")
  torch.use_deterministic_algorithms(True)
  torch.set_num_threads(1)
  makers = {
    "authors_wrn": lambda: wrn_golden(args.iaat),
    "authors_iaat_step": lambda: iaat_step_golden(args.iaat),
    "apgd": lambda: apgd_golden(args.autoattack),
    "schedules": schedule_golden,
  }
  path = os.path.join(HERE, "SOURCES.json")
  sources = {}
  if os.path.exists(path):
    with open(path) as f:
      sources = json.load(f)
  for name in only:
    np.savez(os.path.join(HERE, f"{name}.npz"), **makers[name]())
    # Which torch wrote each fixture (a partial rewrite keeps the others').
    sources.setdefault("torch_per_fixture", {})[f"{name}.npz"] = torch.__version__
  sources["yogeshbalaji/Instance_Adaptive_Adversarial_Training"] = _commit(args.iaat)
  for name, ref in (
    ("fra31/auto-attack", args.autoattack),
    ("yaodongyu/TRADES", args.trades),
    ("locuslab/fast_adversarial", args.fast_adversarial),
  ):
    if ref:
      sources[name] = _commit(ref)
  with open(path, "w") as f:
    json.dump(sources, f, indent=2)
    f.write("\n")
  print("wrote", ", ".join(f"{n}.npz" for n in only), "and SOURCES.json")


if __name__ == "__main__":
  main()
