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
the survivors with their diffs and whether they are explained) and
tools/mutation/RESULTS.md (the kill rate per module, the goal: 90% of the
mutants killed, and every survivor explained), merging with the modules a
previous call measured.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tools", "mutation")
GOAL = 0.90

# module -> the tests that exercise it (fast ones: each mutant runs them).
MODULES = {
    "iaat_tf/training/radius.py": ["tests/radius_test.py", "tests/golden_test.py"],
    "iaat_tf/training/eps_table.py": ["tests/eps_table_test.py"],
    "iaat_tf/attacks/pgd.py": ["tests/pgd_test.py", "tests/l2_attacks_test.py",
                               "tests/gradients_test.py"],
    "iaat_tf/attacks/gradients.py": ["tests/gradients_test.py",
                                     "tests/attack_precision_test.py"],
    "iaat_tf/attacks/norms.py": ["tests/norms_test.py", "tests/l2_attacks_test.py"],
    "iaat_tf/reports/stats.py": ["tests/stats_test.py", "tests/frontier_test.py",
                                 "tests/cost_report_test.py"],
}
KILLED = ("killed", "timeout")
STATUS = re.compile(r"^\s*(\S+): (.+)$")


def _tracked_files() -> list[str]:
  out = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"],
                       check=True, capture_output=True, text=True).stdout.split()
  return [f for f in out if not f.startswith(("experiments/", "bench/", "docs/"))
          and os.path.isfile(os.path.join(REPO, f))]


def _config(module: str, tests: list[str]) -> str:
  quoted = lambda items: ", ".join(json.dumps(i) for i in items)
  return ("\n[tool.mutmut]\n"
          f"source_paths = [{quoted([module])}]\n"
          f"pytest_add_cli_args_test_selection = [{quoted(tests)}]\n"
          'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-m", "not slow"]\n')


def _mutmut(args: list[str], cwd: str, log) -> str:
  result = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=cwd,
                          capture_output=True, text=True)
  log.write(result.stdout + result.stderr)
  if result.returncode:
    raise RuntimeError(f"mutmut {' '.join(args)} exited {result.returncode} "
                       f"(see {log.name})")
  return result.stdout


def measure(module: str, tests: list[str], jobs: int, equivalent: dict) -> dict:
  """Runs mutmut on one module in a scratch copy; returns its summary."""
  scratch = tempfile.mkdtemp(prefix="iaat_mutation_")
  try:
    for name in _tracked_files():
      target = os.path.join(scratch, name)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copy2(os.path.join(REPO, name), target)
    with open(os.path.join(scratch, "pyproject.toml"), "a") as f:
      f.write(_config(module, tests))
    os.makedirs(OUT, exist_ok=True)
    log_path = os.path.join(OUT, "logs", os.path.basename(module) + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
      _mutmut(["run", "--max-children", str(jobs)], scratch, log)
      listing = _mutmut(["results", "--all", "true"], scratch, log)
      statuses = {}
      for line in listing.splitlines():
        match = STATUS.match(line)
        if match:
          statuses[match.group(1)] = match.group(2).strip()
      survivors = []
      for name, status in sorted(statuses.items()):
        if status in KILLED:
          continue
        diff = _mutmut(["show", name], scratch, log)
        changed = [l for l in diff.splitlines()
                   if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        reason = equivalent.get(module, {}).get(name)
        survivors.append({"mutant": name, "status": status, "diff": changed,
                          "equivalent": reason})
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  total = len(statuses)
  killed = sum(s in KILLED for s in statuses.values())
  return {"module": module, "tests": tests, "mutants": total, "killed": killed,
          "kill_rate": killed / total if total else None,
          "explained": sum(bool(s["equivalent"]) for s in survivors),
          "unexplained": sum(not s["equivalent"] for s in survivors),
          "survivors": survivors, "seconds": round(time.perf_counter() - start, 1)}


def write_report(results: dict) -> None:
  with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
    f.write("\n")
  lines = ["# Mutation testing: how much the suite can fail", "",
           "Generated by `python tools/mutation.py` (mutmut; not in CI). A mutant is "
           "killed when one of the module's tests fails or times out. Goal: at least "
           f"{GOAL:.0%} killed per module, and every survivor explained as equivalent "
           "(tools/mutation/equivalent.json) or named as a gap.", "",
           "| module | tests | mutants | killed | kill rate | survivors: equivalent / "
           "unexplained | goal |", "|---|---|---|---|---|---|---|"]
  for module in sorted(results):
    r = results[module]
    goal = "met" if (r["kill_rate"] or 0) >= GOAL and not r["unexplained"] else "missed"
    lines.append(f"| {module} | {', '.join(os.path.basename(t) for t in r['tests'])} | "
                 f"{r['mutants']} | {r['killed']} | {100 * (r['kill_rate'] or 0):.1f}% | "
                 f"{r['explained']} / {r['unexplained']} | {goal} |")
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
  parser.add_argument("--modules", default=",".join(MODULES),
                      help="comma-separated modules (default: all of MODULES)")
  parser.add_argument("--jobs", type=int, default=2, help="mutants at a time")
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
    r = measure(module, MODULES[module], args.jobs, equivalent)
    results[module] = r
    write_report(results)  # After every module: nothing lost if stopped.
    print(f"mutation: {module}: {r['killed']}/{r['mutants']} killed "
          f"({100 * (r['kill_rate'] or 0):.1f}%), {r['unexplained']} survivor(s) "
          f"unexplained, {r['seconds']:.0f} s", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
