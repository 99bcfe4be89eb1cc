"""cli/executors.py: runs as local processes in device slots, or as Ray tasks
on a local Ray cluster (2 CPUs): every run reported once, a failing run
reported with its node while the others go on, a killed worker's run retried."""

import os
import signal
import subprocess
import sys

import pytest

from iaat_tf.runs import executors


def _square(pair, env):
  """A run that needs no TensorFlow: its number squared."""
  name, seed = pair
  if name == "bad":
    raise RuntimeError("bad exited 1 (log: logs/bad_seed0.log)")
  return {
    "setting": name,
    "seed": seed,
    "value": seed * seed,
    "growth": env.get("TF_FORCE_GPU_ALLOW_GROWTH"),
  }


def _dies_once(pair, env):
  """Kills its own worker the first time (a marker file says it tried)."""
  marker = os.path.join(env["MARKER_DIR"], f"{pair[0]}_{pair[1]}")
  if pair[0] == "victim" and not os.path.exists(marker):
    open(marker, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)
  return _square(pair, env)


def _collect(executor, pairs, work):
  got = []
  executor.run(pairs, work, lambda pair, outcome: got.append((pair, outcome)))
  return got


def test_local_executor_reports_every_run_and_goes_on_after_a_failure(monkeypatch):
  monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
  local = executors.LocalExecutor([None], workers=2)
  got = _collect(local, [("a", 1), ("bad", 0), ("a", 2)], _square)
  assert sorted(p for p, _ in got) == [("a", 1), ("a", 2), ("bad", 0)]
  by = dict(got)
  assert by[("a", 2)]["run"]["value"] == 4 and by[("a", 2)]["run"]["growth"] == "true"
  assert "log: logs/bad_seed0.log" in by[("bad", 0)]["error"] and by[("bad", 0)]["node"]
  assert local.describe() == "2 at a time on CPU"


def test_ray_missing_is_one_clear_line(monkeypatch):
  monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails.
  with pytest.raises(executors.ExecutorError, match=r'pip install "iaat_tf\[ray\]"') as error:
    executors.RayExecutor(None, gpus_per_run=1)
  assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
  ray = pytest.importorskip("ray")
  # The workers of a local cluster inherit the environment it starts with.
  os.environ["MARKER_DIR"] = str(tmp_path_factory.mktemp("markers"))
  # This module's run functions travel by value (workers cannot import tests).
  ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
  ray.init(
    num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024
  )
  yield os.environ["MARKER_DIR"]
  ray.shutdown()


@pytest.mark.slow
def test_ray_runs_tasks_reports_failures_and_retries_a_killed_worker(ray_cluster):
  ray_executor = executors.RayExecutor(None, gpus_per_run=1)  # Joins the running cluster.
  assert ray_executor.gpus_per_run == 0  # No GPUs here: tasks ask for none.
  assert "2 CPUs and 0 GPUs" in ray_executor.describe()
  pairs = [("a", 1), ("bad", 0), ("victim", 3), ("a", 2)]
  got = _collect(ray_executor, pairs, _dies_once)
  by = dict(got)
  assert sorted(by) == sorted(pairs)  # Every run reported once.
  assert by[("victim", 3)]["run"]["value"] == 9  # Its worker died; the retry ran it.
  assert os.path.exists(os.path.join(ray_cluster, "victim_3"))
  assert "log: logs/bad_seed0.log" in by[("bad", 0)]["error"]
  assert by[("a", 2)]["run"]["value"] == 4 and by[("a", 2)]["node"]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A driver of its own (a new local cluster), whose first task kills its worker.
DRIVER = """
import os, signal, sys
from iaat_tf.runs import executors

HERE = sys.argv[1]  # The driver's; a task runs in a worker with argv of its own.

def work(pair, env, here=HERE):
  if pair[0] == "victim" and not os.path.exists(here + "/tried"):
    open(here + "/tried", "w").close()
    os.kill(os.getpid(), signal.SIGKILL)
  return {"value": pair[1]}

ray = executors.RayExecutor(
  None, 0, log_dir=HERE + "/logs", init_kwargs={"num_cpus": 1, "object_store_memory": 80 << 20}
)
print("frontier:", ray.describe())
ray.run([("victim", 1), ("a", 2)], work, lambda pair, out: print("frontier: done", pair, out["run"]))
ray.shutdown()
"""


def test_plain_strips_terminal_colours():
  assert executors.plain("\x1b[33m(raylet)\x1b[0m A worker died") == "(raylet) A worker died"


@pytest.mark.slow
def test_ray_lines_go_to_the_logs_folder_in_plain_text(tmp_path):
  """Ray's notices and the raylet's "worker died" lines reach neither the
  driver's stdout nor its stderr (no colour codes, even when not a
  terminal); they are in logs/ray.log, plain."""
  pytest.importorskip("ray")
  driver = subprocess.run(
    [sys.executable, "-c", DRIVER, str(tmp_path)],
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": REPO},
  )
  assert driver.returncode == 0, driver.stdout + driver.stderr
  assert driver.stderr == ""
  lines = driver.stdout.strip().splitlines()
  assert all(line.startswith("frontier: ") for line in lines), driver.stdout
  assert "\x1b[" not in driver.stdout and "(raylet)" not in driver.stdout
  assert "(Ray's own messages: " in lines[0] and len(lines) == 3
  log = (tmp_path / "logs" / "ray.log").read_text()
  assert "\x1b[" not in log
  assert "(raylet) A worker died" in log and "Started a local Ray instance" in log


TINY = [
  "--experiment=quickstart",
  "--pgd_at_eps=0.2",
  "--iaat=eps=0.3",
  "--seeds=0",
  "--train_args=--epochs=4 --warmup_epochs=1 --val_examples=32 --pgd_steps=1 "
  "--max_train_examples=256",
  "--aa_max_examples=64",
  "--aa_apgd_iters=3",
  "--aa_targets=1",
  "--aa_fab_iters=3",
  "--aa_square_queries=5",
  "--nocurve",
]


def _kill_the_worker_of_the_first_checkpointed_run(runs_dir, killed, stop):
  """Waits for a run's first checkpoint, then SIGKILLs the process that runs
  its training (the Ray worker; the training dies with it)."""
  import glob  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  while not stop.is_set():
    for ckpt in glob.glob(os.path.join(runs_dir, "*", "checkpoints", "ckpt-*.index")):
      run_dir = os.path.dirname(os.path.dirname(ckpt))
      if os.path.exists(os.path.join(run_dir, "results.json")):
        continue
      for pid in os.listdir("/proc"):
        if not pid.isdigit():
          continue
        try:
          cmdline = open(f"/proc/{pid}/cmdline").read()
          parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
          continue
        if "iaat_tf.main" in cmdline and run_dir in cmdline:
          os.kill(parent, signal.SIGKILL)
          killed.append(os.path.basename(run_dir))
          return
    time.sleep(0.2)


@pytest.mark.slow
def test_frontier_on_ray_matches_the_local_executor_and_survives_a_killed_worker(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top

  pytest.importorskip("ray")
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
  command = [sys.executable, "-m", "iaat_tf.frontier", *TINY]
  local = subprocess.run(
    command + [f"--out_dir={tmp_path / 'local'}"],
    capture_output=True,
    text=True,
    cwd=tmp_path,
    env=env,
    timeout=1200,
  )
  assert local.returncode == 0, local.stdout + local.stderr
  killed, stop = [], threading.Event()
  watcher = threading.Thread(
    target=_kill_the_worker_of_the_first_checkpointed_run,
    args=(str(tmp_path / "ray" / "runs"), killed, stop),
  )
  watcher.start()
  try:
    on_ray = subprocess.run(
      command + ["--executor=ray", f"--out_dir={tmp_path / 'ray'}"],
      capture_output=True,
      text=True,
      cwd=tmp_path,
      env=env,
      timeout=1200,
    )
  finally:
    stop.set()
    watcher.join()
  assert on_ray.returncode == 0, on_ray.stdout + on_ray.stderr
  assert "as Ray tasks" in on_ray.stdout and " on " in on_ray.stdout
  # The frontier's lines only, plain; Ray's own (a worker died) in logs/ray.log.
  assert all(line.startswith("frontier: ") for line in on_ray.stdout.strip().splitlines())
  assert "\x1b[" not in on_ray.stdout + on_ray.stderr and "(raylet)" not in on_ray.stdout
  assert "(raylet) A worker died" in (tmp_path / "ray" / "logs" / "ray.log").read_text()
  assert killed, "no run was caught mid-training"
  # The killed run's task was retried: its training command ran twice, the
  # second time resuming from the checkpoint.
  log = (tmp_path / "ray" / "logs" / f"{killed[0]}.log").read_text()
  assert log.count("-m iaat_tf.main") == 2 and "resum" in log.lower()
  # The same frontier.json as the local executor: every run's numbers equal.
  results = [json.loads((tmp_path / d / "frontier.json").read_text()) for d in ("local", "ray")]
  strip = lambda payload: [{k: v for k, v in r.items() if k != "run_dir"} for r in payload["runs"]]
  assert strip(results[0]) == strip(results[1])
  assert [s["verdict"] for s in results[0]["settings"] if "verdict" in s] == [
    s["verdict"] for s in results[1]["settings"] if "verdict" in s
  ]
