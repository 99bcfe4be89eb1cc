"""Mutation testing of the modules the verdicts and references rest on.

    pip install -e ".[dev]"              # mutmut
    python tools/mutation.py             # every module below, about an hour on 2 cores
    python tools/mutation.py --modules=iaat_tf/reports/stats.py

Not part of CI (too slow for it): it measures how much the suite can fail.
For each module, in a scratch copy of the tracked tree, mutmut mutates the
module and runs the tests listed for it in MODULES (the tests that exercise
it; mutmut runs, per mutant, those of them that reach the mutated function).
A mutant is killed when a test fails (or times out); it survives when every
test passes. Survivors are either equivalent (the mutated program behaves
the same: listed with the reason in tools/mutation/equivalent.json) or a gap
in the suite (listed as such).

Writes tools/mutation/results.json (per module: mutants, killed, survived,
not checked, the survivors with their diffs and whether they are explained)
and tools/mutation/RESULTS.md (the kill rate per module over the mutants
checked, the goal: 90% killed, every survivor explained, none left
unchecked), merging with the modules a previous call measured. The scratch
copies stay in tools/mutation/work/ (not committed): a later call resumes
where `--minutes` stopped one (mutmut keeps its results there). mutmut
re-tests a mutant only when its function changed: after changing the tests,
pass `--fresh` (start the module's work folder anew).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tools", "mutation")
GOAL = 0.90

# module -> the tests that exercise it (fast ones: each mutant runs them).
MODULES = {
  "iaat_tf/training/radius.py": [
    "tests/training/radius_test.py",
    "tests/training/eps_ramp_test.py",
    "tests/training/golden_test.py",
  ],
  "iaat_tf/training/eps_table.py": ["tests/training/eps_table_test.py"],
  "iaat_tf/attacks/pgd.py": [
    "tests/attacks/pgd_test.py",
    "tests/attacks/l2_attacks_test.py",
    "tests/attacks/gradients_test.py",
  ],
  "iaat_tf/attacks/gradients.py": [
    "tests/attacks/gradients_test.py",
    "tests/attacks/attack_precision_test.py",
  ],
  "iaat_tf/attacks/norms.py": ["tests/attacks/norms_test.py", "tests/attacks/l2_attacks_test.py"],
  "iaat_tf/reports/stats.py": [
    "tests/reports/stats_test.py",
    "tests/reports/frontier_test.py",
    "tests/experiments/iaat_cost_test.py",
  ],
}
KILLED = ("killed", "timeout")
UNCHECKED = ("not checked",)
STATUS = re.compile(r"^\s*(\S+): (.+)$")


def _tracked_files() -> list[str]:
  out = subprocess.run(
    ["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout.split()
  # experiments/: its code only (a test imports the cost experiment's report).
  return [
    f
    for f in out
    if not f.startswith(("bench/", "docs/"))
    and not (f.startswith("experiments/") and not f.endswith(".py"))
    and os.path.isfile(os.path.join(REPO, f))
  ]


def _config(module: str, tests: list[str]) -> str:
  quoted = lambda items: ", ".join(json.dumps(i) for i in items)
  return (
    "\n[tool.mutmut]\n"
    f"source_paths = [{quoted([module])}]\n"
    f"pytest_add_cli_args_test_selection = [{quoted(tests)}]\n"
    # The rest of the package beside the mutated module.
    'also_copy = ["iaat_tf", "flags", "experiments"]\n'
    'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-m", "not slow"]\n'
  )


def _mutmut(args: list[str], cwd: str, log, minutes: float = 0) -> str:
  """Runs mutmut; with `minutes`, stops it (SIGINT: it keeps its results) then."""
  process = subprocess.Popen(
    [sys.executable, "-m", "mutmut", *args],
    cwd=cwd,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    start_new_session=True,
  )
  try:
    out, _ = process.communicate(timeout=minutes * 60 if minutes else None)
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGINT)
    try:
      out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      out, _ = process.communicate()
    log.write(out + f"\n(stopped after {minutes} minutes)\n")
    return out
  log.write(out)
  if process.returncode:
    raise RuntimeError(f"mutmut {' '.join(args)} exited {process.returncode} (see {log.name})")
  return out


def _workspace(module: str, tests: list[str]) -> str:
  """tools/mutation/work/<module>: the tracked tree, refreshed; mutmut's
  results from an earlier call stay (it re-tests what changed)."""
  work = os.path.join(OUT, "work", module.replace("/", "_"))
  for name in _tracked_files():
    target = os.path.join(work, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.join(REPO, name), target)
  with open(os.path.join(work, "pyproject.toml"), "a") as f:
    f.write(_config(module, tests))
  return work


def measure(
  module: str, tests: list[str], jobs: int, equivalent: dict, minutes: float, fresh: bool = False
) -> dict:
  """Runs mutmut on one module in its workspace; returns its summary."""
  if fresh:
    shutil.rmtree(os.path.join(OUT, "work", module.replace("/", "_")), ignore_errors=True)
  work = _workspace(module, tests)
  log_path = os.path.join(OUT, "logs", os.path.basename(module) + ".log")
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  start = time.perf_counter()
  with open(log_path, "w") as log:
    _mutmut(["run", "--max-children", str(jobs)], work, log, minutes)
    listing = _mutmut(["results", "--all", "true"], work, log)
    statuses = {}
    for line in listing.splitlines():
      match = STATUS.match(line)
      if match:
        statuses[match.group(1)] = match.group(2).strip()
    survivors = []
    for name, status in sorted(statuses.items()):
      if status in KILLED or status in UNCHECKED:
        continue
      diff = _mutmut(["show", name], work, log)
      changed = [l for l in diff.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
      reason = equivalent.get(module, {}).get(name)
      survivors.append({"mutant": name, "status": status, "diff": changed, "equivalent": reason})
  total = len(statuses)
  unchecked = sum(s in UNCHECKED for s in statuses.values())
  killed = sum(s in KILLED for s in statuses.values())
  checked = total - unchecked
  return {
    "module": module,
    "tests": tests,
    "mutants": total,
    "checked": checked,
    "not_checked": unchecked,
    "killed": killed,
    "kill_rate": killed / checked if checked else None,
    "explained": sum(bool(s["equivalent"]) for s in survivors),
    "unexplained": sum(not s["equivalent"] for s in survivors),
    "survivors": survivors,
    "seconds": round(time.perf_counter() - start, 1),
  }


def write_report(results: dict) -> None:
  with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
    f.write("\n")
  lines = [
    "# Mutation testing: how much the suite can fail",
    "",
    "Generated by `python tools/mutation.py` (mutmut; not in CI). A mutant is "
    "killed when one of the module's tests fails or times out. Goal: at least "
    f"{GOAL:.0%} killed per module, and every survivor explained as equivalent "
    "(tools/mutation/equivalent.json) or named as a gap.",
    "",
    "| module | tests | mutants | checked | killed | kill rate (of checked) | "
    "survivors: equivalent / unexplained | goal |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for module in sorted(results):
    r = results[module]
    if r["not_checked"]:
      goal = f"not measured ({r['not_checked']} unchecked)"
    else:
      goal = "met" if (r["kill_rate"] or 0) >= GOAL and not r["unexplained"] else "missed"
    lines.append(
      f"| {module} | {', '.join(os.path.basename(t) for t in r['tests'])} | "
      f"{r['mutants']} | {r['checked']} | {r['killed']} | "
      f"{100 * (r['kill_rate'] or 0):.1f}% | {r['explained']} / "
      f"{r['unexplained']} | {goal} |"
    )
  for module in sorted(results):
    survivors = results[module]["survivors"]
    if not survivors:
      continue
    lines += ["", f"## Survivors in {module}", ""]
    for s in survivors:
      why = s["equivalent"] or "NOT EXPLAINED: a gap in the suite"
      diff = " / ".join(l.strip() for l in s["diff"][:4])
      lines.append(f"- `{s['mutant']}` ({s['status']}): `{diff}`: {why}")
  with open(os.path.join(OUT, "RESULTS.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--modules", default=",".join(MODULES), help="comma-separated modules (default: all of MODULES)"
  )
  parser.add_argument("--jobs", type=int, default=2, help="mutants at a time")
  parser.add_argument(
    "--minutes",
    type=float,
    default=0,
    help="stop each module's run after this long (0: no limit); a later call resumes it",
  )
  parser.add_argument(
    "--fresh",
    action="store_true",
    help="start each module's work folder anew (after changing tests)",
  )
  args = parser.parse_args(argv)
  modules = [m for m in args.modules.split(",") if m]
  unknown = [m for m in modules if m not in MODULES]
  if unknown:
    parser.error(f"unknown --modules {unknown}; choose from {', '.join(MODULES)}")
  try:
    import mutmut  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    parser.error('needs mutmut: pip install -e ".[dev]"')
  path = os.path.join(OUT, "equivalent.json")
  equivalent = json.load(open(path)) if os.path.exists(path) else {}
  results_path = os.path.join(OUT, "results.json")
  results = json.load(open(results_path)) if os.path.exists(results_path) else {}
  for module in modules:
    print(f"mutation: {module} ({', '.join(MODULES[module])}) ...", flush=True)
    r = measure(module, MODULES[module], args.jobs, equivalent, args.minutes, args.fresh)
    results[module] = r
    write_report(results)  # After every module: nothing lost if stopped.
    print(
      f"mutation: {module}: {r['killed']}/{r['mutants']} killed "
      f"({100 * (r['kill_rate'] or 0):.1f}% of {r['checked']} checked, "
      f"{r['not_checked']} not checked), {r['unexplained']} survivor(s) "
      f"unexplained, {r['seconds']:.0f} s",
      flush=True,
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
