"""What the frontier may reuse from an earlier call: its runs' training and their AutoAttack.

A rerun of `iaat-frontier` into the same --out_dir reuses what matches the
settings asked for now, and never a result made with other ones:

* Training. `check_training` checks every run's training command line as
  the training command does (cli/train.check_main, one child process, no
  TensorFlow), before any run starts: bad training flags, and a run trained
  with other settings (another --train_args or experiment flagfile), are a
  one-line refusal naming them; a resume's legitimate change (more --epochs,
  recorded in the run's config.json) is said in one line.
* AutoAttack. `autoattack_differences` compares the AutoAttack in a run's
  results.json with the one `iaat-evaluate` would run now
  (evaluation_config.autoattack_options): the radius, the examples, the
  norm, the seed and every --aa_* count (`AutoAttackOptions.fingerprint`).
  A run whose AutoAttack differs is attacked again, said in one line
  (`say_stale`), as a user who changed an --aa_* option expects.

Imports no TensorFlow.
"""

import collections
import json
import subprocess
import sys
from typing import Callable, Optional, Sequence

from iaat_tf import run_io
from iaat_tf.runs.evaluation_config import EvaluationConfig, EvaluationError, autoattack_options
from iaat_tf.evaluation.settings import AutoAttackOptions

Log = Callable[[str], None]


def check_training(
  runs: Sequence[tuple], out_dir: str, log: Log = print, data: bool = True
) -> Optional[str]:
  """The one-line refusal for `runs` ([(run_dir, training args)]), or None.

  None when every run may train (or resume); each change a resume makes is
  logged in one line, counted over the runs. `data`: check the data's
  paths here too (False when the runs read them on other machines).
  """
  code = f"from iaat_tf.cli import train; train.check_main(data={data})"
  command = [sys.executable, "-c", code]
  result = subprocess.run(
    command, input=json.dumps([args for _, args in runs]), capture_output=True, text=True
  )
  if result.returncode:
    tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return f"checking the training flags failed: {tail}"
  answers = json.loads(result.stdout.strip().splitlines()[-1])
  bad = [(run_dir, a) for (run_dir, _), a in zip(runs, answers) if "error" in a]
  if bad:
    run_dir, answer = bad[0]
    more = f" (and {len(bad) - 1} more runs)" if len(bad) > 1 else ""
    if "differences" in answer:
      return (
        f"--out_dir={out_dir} holds runs trained with other settings: "
        f"{', '.join(answer['differences'])} in {run_dir}{more}; rerun with the "
        "--experiment and --train_args they were trained with, or use a new --out_dir"
      )
    return f"the training flags of {run_dir}: {answer['error']}{more}"
  changed = collections.Counter(
    f"{c['setting']} from {c['was']} to {c['now']}" for a in answers for c in a["changes"]
  )
  for change, count in changed.items():
    log(f"frontier: {count} run(s) resume with {change} (their config.json records it)")
  return None


def autoattack_differences(run_dir: str, asked: AutoAttackOptions) -> Optional[list]:
  """How the AutoAttack in a run's results.json differs from the one asked
  for now, as '--aa_flag (old there, new now)' lines: [] when it can be
  reused, None when the run has none (or no results.json)."""
  try:
    results = run_io.read_results(run_dir) or {}
    run = run_io.config_from_dict(run_io.read_config_dict(run_dir))
  except run_io.RunDirError:
    return None
  aa = results.get("autoattack")
  if not aa:
    return None
  try:
    want = autoattack_options(EvaluationConfig(attacks=("autoattack",), autoattack=asked), run)
  except EvaluationError as e:
    return [str(e)]
  out = want.differences({**(aa.get("settings") or {}), "eps": aa.get("eps")})
  n, expected = aa.get("n_examples"), _examples(run, results, aa, want.max_examples or 0)
  if n != expected:
    out.append(f"--aa_max_examples ({n} examples there, {expected or 'all'} now)")
  return out


def _examples(run, results: dict, aa: dict, cap: int) -> Optional[int]:
  """How many examples an AutoAttack capped at `cap` (0: all) reads on the
  run's test split (None: unknown). The split's size is results.json's
  num_test when the run tested on all of it, or the stored AutoAttack's
  count when that read the whole split (fewer than its own cap)."""
  split = results.get("num_test") if run.data.max_eval_examples == 0 else None
  stored_cap = (aa.get("settings") or {}).get("max_examples")
  if (
    split is None and stored_cap is not None and (stored_cap == 0 or aa["n_examples"] < stored_cap)
  ):
    split = aa["n_examples"]
  if split is None:
    return cap or None
  return min(cap, split) if cap else split


def say_stale(run_dirs: Sequence[str], asked: AutoAttackOptions, log: Log = print) -> None:
  """One line per set of differences: the runs whose AutoAttack is made again."""
  stale = collections.Counter(
    ", ".join(d) for d in (autoattack_differences(r, asked) for r in run_dirs) if d
  )
  for differences, count in stale.items():
    log(
      f"frontier: {count} run(s) were judged with other AutoAttack options "
      f"({differences}): they are attacked again"
    )
