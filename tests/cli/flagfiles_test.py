"""Every shipped flagfile runs its real model at its real shape (on CPU).

Each file in flags/ (a glob: new flagfiles are covered automatically) runs
through `python -m iaat_tf.main` in a subprocess for two tiny training steps
plus a validation and the final evaluation. Only what a CPU cannot afford is
overridden: the data become `--dataset=synthetic` at the flagfile dataset's
image shape and class count (`--synthetic_like`), batches are 2 per replica,
1 epoch, one PGD step, no warmup (so the adaptive radius rule runs in the
first step), no SavedModel export. Model, method, precision, strategy,
augmentation and everything else come from the flagfile. Flagfiles with
`--strategy=mirrored` run on 2 virtual CPU devices, so a flagfile that would
crash on step 1 on a GPU machine fails here instead.

Most of a run's time is single-threaded graph tracing of the big models, so
the runs of the selected flagfiles go two at a time (`PARALLEL_RUNS`), the
slowest (mirrored ResNet-50) first; each test waits for its own run.
Measured on a shared 2-core CPU box: 272 s for all seven flagfiles (5.4 min
of CPU), the mirrored mixed_float16 ResNet-50 run at 224x224 being the long
pole (272 s; WRN-32-10 runs 30-65 s, the quick starts 8 s). The flagfile's
precision is kept: mixed_float16 costs about 40% more CPU than float32 here.
"""

import concurrent.futures
import glob
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGFILES = sorted(glob.glob(os.path.join(REPO, "flags", "*.flags")))
PER_REPLICA_BATCH = 2
TIMEOUT = 1800  # Per run; a busy shared box is many times slower than an idle one.
PARALLEL_RUNS = 2


def flag_values(path: str) -> dict:
  """--name=value settings of a flagfile, nested --flagfile lines followed."""
  values = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line.startswith("--"):
        continue
      name, _, value = line[2:].partition("=")
      if name == "flagfile":
        nested = value if os.path.isabs(value) else os.path.join(REPO, value)
        values.update(flag_values(nested))
      else:
        values[name] = value
  return values


def smoke_args(path: str, output_dir: str) -> list:
  """The flagfile plus the overrides of a two-step CPU run."""
  values = flag_values(path)
  dataset = values.get("dataset", "digits")
  like = values.get("synthetic_like", "cifar10") if dataset == "synthetic" else dataset
  assert like in ("digits", "mnist", "cifar10", "cifar100", "imagenet2012"), (
    f"{path}: no synthetic stand-in for --dataset={dataset}"
  )
  replicas = 2 if values.get("strategy") == "mirrored" else 1
  batch = PER_REPLICA_BATCH * replicas
  args = [
    f"--flagfile={path}",
    "--dataset=synthetic",
    f"--synthetic_like={like}",
    f"--synthetic_train_examples={2 * batch}",
    f"--synthetic_test_examples={batch}",
    f"--batch_size={batch}",
    f"--eval_batch_size={batch}",
    f"--val_examples={batch}",
    "--epochs=1",
    "--warmup_epochs=0",
    "--pgd_steps=1",
    "--eval_pgd_steps=1",
    "--export=false",
    "--verbose=2",
    f"--output_dir={output_dir}",
  ]
  if replicas > 1:
    args.append(f"--num_virtual_devices={replicas}")
  return args


def _expected_cost(path: str) -> int:
  values = flag_values(path)
  return (
    (values.get("model") == "resnet50") * 4
    + (values.get("strategy") == "mirrored") * 2
    + (values.get("model") == "wide_resnet")
  )


def _run(path: str, output_dir: str):
  env = dict(
    os.environ,
    TF_CPP_MIN_LOG_LEVEL="2",
    PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  env.pop("TF_CONFIG", None)
  start = time.perf_counter()
  result = subprocess.run(
    [sys.executable, "-m", "iaat_tf.main", *smoke_args(path, output_dir)],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=TIMEOUT,
  )
  return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
  """path -> future (CompletedProcess, seconds) of every selected flagfile."""
  selected = [
    item.callspec.params["path"]
    for item in request.session.items
    if item.module is request.module and hasattr(item, "callspec")
  ]
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_RUNS)
  futures = {}
  for path in sorted(set(selected), key=_expected_cost, reverse=True):
    out = tmp_path_factory.mktemp(os.path.basename(path).replace(".", "_"))
    futures[path] = (pool.submit(_run, path, str(out / "run")), out / "run")
  start = time.perf_counter()
  yield futures
  pool.shutdown(wait=True, cancel_futures=True)
  print(f"\nflagfiles_test: {len(futures)} runs in {time.perf_counter() - start:.0f} s")


@pytest.mark.slow
@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_runs_two_steps_of_its_real_model(path, runs):
  future, out = runs[path]
  result, seconds = future.result()
  output = result.stdout + result.stderr
  assert result.returncode == 0, f"exit {result.returncode}:\n{output[-4000:]}"
  assert "2/2" in result.stdout, result.stdout[-2000:]  # Two training steps ran.
  replicas = 2 if flag_values(path).get("strategy") == "mirrored" else 1
  assert f"{replicas} replica(s)" in result.stdout, result.stdout[-2000:]
  assert (out / "results.json").exists()
  adaptive = flag_values(path).get("method", "iaat") in ("iaat", "iaat_cheap")
  assert (out / "eps_table.npy").exists() == adaptive  # Only learned radii.
  print(f"{os.path.basename(path)}: {seconds:.1f} s")
