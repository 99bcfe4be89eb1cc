"""training/devices.py: GPU slots for runs side by side, their environment, the memory policy."""

import dataclasses
import threading
import time

import pytest

from iaat_tf.training import devices


def test_gpu_ids_from_the_flag_the_environment_or_nvidia_smi():
  probe = lambda: ["0", "1", "2"]
  assert devices.gpu_ids("auto", {}, probe) == ["0", "1", "2"]
  assert devices.gpu_ids("auto", {"CUDA_VISIBLE_DEVICES": "4,5"}, probe) == ["4", "5"]
  assert devices.gpu_ids("auto", {"CUDA_VISIBLE_DEVICES": ""}, probe) == []  # Hidden.
  assert devices.gpu_ids("none", {}, probe) == []
  assert devices.gpu_ids("2, 3", {}, probe) == ["2", "3"]
  assert devices.gpu_ids("auto", {}, lambda: []) == []  # A machine without GPUs.
  for bad in ("1,1", ","):
    with pytest.raises(devices.DeviceError, match="--gpus"):
      devices.gpu_ids(bad, {}, probe)


def test_eight_gpus_make_eight_four_or_two_slots_that_share_nothing():
  ids = [str(i) for i in range(8)]
  for per_run, count in ((1, 8), (2, 4), (4, 2), (3, 2)):
    slots = devices.slots(ids, per_run)
    assert len(slots) == count and all(len(s) == per_run for s in slots)
    used = [d for s in slots for d in s]
    assert len(used) == len(set(used))  # No GPU in two slots.
  assert devices.slots(ids, 3)[-1] == ("3", "4", "5")  # GPUs 6, 7 left over.
  assert devices.slots([], 1) == [None] and devices.slots(ids, 0) == [None]
  with pytest.raises(devices.DeviceError, match="only 2 GPU"):
    devices.slots(["0", "1"], 4)


def test_jobs_default_to_one_per_slot_and_never_exceed_them():
  four = devices.slots([str(i) for i in range(8)], 2)
  assert devices.jobs_for(0, four) == 4 and devices.jobs_for(2, four) == 2
  with pytest.raises(devices.DeviceError, match="--jobs=5 but there are 4 GPU slot"):
    devices.jobs_for(5, four)
  assert devices.jobs_for(0, [None]) == 1 and devices.jobs_for(3, [None]) == 3  # CPU.


def test_child_environment_sees_its_slot_and_the_memory_policy():
  base = {"PATH": "/bin"}
  env = devices.child_env(("2", "3"), base)
  assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["PATH"] == "/bin"
  assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
  assert devices.child_env(("0",), base, growth=False)["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"
  cpu = devices.child_env(None, base)  # On CPU the devices are left alone.
  assert "CUDA_VISIBLE_DEVICES" not in cpu and cpu["PATH"] == "/bin"
  # What the user exported wins.
  mine = {"TF_FORCE_GPU_ALLOW_GROWTH": "false", "CUDA_VISIBLE_DEVICES": "7"}
  assert devices.child_env(None, mine) == mine
  assert devices.memory_env(True, mine) == {}


def test_concurrent_runs_never_hold_the_same_gpus():
  slots = devices.slots([str(i) for i in range(4)], 2)
  held, seen, lock = set(), [], threading.Lock()
  overlap = []

  def work(item, slot):
    env = devices.child_env(slot, {})
    gpus = set(env["CUDA_VISIBLE_DEVICES"].split(","))
    with lock:
      if held & gpus:
        overlap.append((item, gpus))
      held.update(gpus)
      seen.append((item, env["CUDA_VISIBLE_DEVICES"]))
    time.sleep(0.02)
    with lock:
      held.difference_update(gpus)

  devices.run_in_slots(list(range(12)), work, slots, workers=devices.jobs_for(0, slots))
  assert not overlap and len(seen) == 12
  assert {v for _, v in seen} == {"0,1", "2,3"}  # Both slots were used.


def test_on_cpu_runs_share_the_empty_slot():
  at_once, peak, lock = [0], [0], threading.Lock()

  def work(item, slot):
    assert slot is None
    with lock:
      at_once[0] += 1
      peak[0] = max(peak[0], at_once[0])
    time.sleep(0.05)
    with lock:
      at_once[0] -= 1

  devices.run_in_slots(list(range(6)), work, [None], workers=3)
  assert peak[0] == 3  # --jobs=3 on CPU: three at a time.


def test_the_frontier_gives_each_run_its_slot(tmp_path, monkeypatch):
  """iaat-frontier on a (pretend) 4-GPU box, 2 per run: each run's
  processes get their slot's CUDA_VISIBLE_DEVICES and the memory policy."""
  from iaat_tf.runs import frontier_config, frontier_run  # pylint: disable=g-import-not-at-top

  envs, lock = [], threading.Lock()

  def fake(setting, seed, options, experiment_path, env=None):
    with lock:
      envs.append(
        (setting.name, seed, env["CUDA_VISIBLE_DEVICES"], env["TF_FORCE_GPU_ALLOW_GROWTH"])
      )
    raise RuntimeError("not trained in this test")

  monkeypatch.setattr(frontier_run, "train_and_evaluate", fake)
  monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
  options = frontier_config.FrontierConfig(
    experiment="quickstart",
    out_dir=str(tmp_path),
    pgd_at_eps=(0.1, 0.2),
    seeds=(0, 1),
    gpus="0,1,2,3",
    gpus_per_run=2,
  )
  lines = []
  with pytest.raises(frontier_config.FrontierError, match="no run finished"):
    frontier_run.frontier(options, log=lines.append)
  assert "2 at a time in GPU slots 0,1 2,3" in lines[0]
  assert len(envs) == 4 and {e[2] for e in envs} <= {"0,1", "2,3"}
  assert {e[3] for e in envs} == {"true"}
  with pytest.raises(frontier_config.FrontierError, match="--jobs=3 but there are 2 GPU slot"):
    frontier_run.frontier(dataclasses.replace(options, jobs=3), log=lines.append)
