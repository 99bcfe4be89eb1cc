"""iaat_tf.pareto: front, results.json reading, CSV/PNG and the CLI."""

import csv
import json
import os
import subprocess
import sys

import pytest

from iaat_tf.reports import pareto

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_run(root, name, method, train_eps, clean, pgd, worst=None, eval_eps=8 / 255):
  run_dir = root / name
  run_dir.mkdir(parents=True)
  results = {
    "method": method,
    "dataset": "digits",
    "model": "small_cnn",
    "train_eps": train_eps,
    "final": {"clean_accuracy": clean, "pgd_accuracy": pgd, "eval_eps": eval_eps},
    "history": {"loss": [1.0, 0.5]},
  }
  if worst is not None:
    results["robustness"] = {
      "clean_accuracy": clean,
      "curve": [
        {"eps": 0.0, "pgd_ce": clean, "worst_case": clean},
        {"eps": eval_eps, "pgd_ce": pgd, "apgd_ce": worst + 0.01, "worst_case": worst},
        {"eps": 2 * eval_eps, "pgd_ce": pgd / 2, "worst_case": worst / 2},
      ],
    }
  (run_dir / "results.json").write_text(json.dumps(results))
  return str(run_dir)


@pytest.fixture(name="run_dirs")
def _run_dirs(tmp_path):
  root = tmp_path / "runs"
  return [
    _write_run(root, "iaat_8", "iaat", 8 / 255, 0.90, 0.50, worst=0.45),
    _write_run(root, "pgd_4", "pgd_at", 4 / 255, 0.88, 0.40),
    _write_run(root, "pgd_8", "pgd_at", 8 / 255, 0.80, 0.48, worst=0.46),
    _write_run(root, "standard", "standard", 0.0, 0.95, 0.01),
    _write_run(root, "cheap", "iaat_cheap", 8 / 255, 0.85, 0.42),
  ]


def test_pareto_front_hand_made():
  points = [(0.1, 0.9), (0.5, 0.5), (0.4, 0.4), (0.9, 0.1), (0.5, 0.5), (0.2, 0.2), (0.5, 0.3)]
  # (0.4,0.4), (0.2,0.2) and (0.5,0.3) are dominated by (0.5,0.5);
  # duplicates of a front point are both kept. Sorted by x.
  assert pareto.pareto_front(points) == [0, 1, 4, 3]
  assert pareto.pareto_front([(0.3, 0.3)]) == [0]
  assert pareto.pareto_front([]) == []
  assert pareto.pareto_front([(float("nan"), 1.0), (0.1, 0.1)]) == [1]


def test_collect_runs(run_dirs):
  runs = {r["name"]: r for r in pareto.collect_runs(run_dirs)}
  assert list(runs) == ["iaat_8", "pgd_4", "pgd_8", "standard", "cheap"]
  iaat = runs["iaat_8"]
  assert iaat["method"] == "iaat"
  assert iaat["train_eps"] == pytest.approx(8 / 255)
  assert iaat["clean_accuracy"] == 0.90
  assert iaat["robust_accuracy"] == 0.45  # worst_case at the eval eps.
  assert iaat["robust_source"] == "worst_case"
  assert runs["pgd_4"]["robust_accuracy"] == 0.40  # final.pgd_accuracy.
  assert runs["pgd_4"]["robust_source"] == "pgd_accuracy"


def test_collect_runs_duplicate_basenames(tmp_path):
  a = _write_run(tmp_path / "a", "run", "iaat", 0.03, 0.9, 0.5)
  b = _write_run(tmp_path / "b", "run", "pgd_at", 0.03, 0.8, 0.5)
  names = [r["name"] for r in pareto.collect_runs([a, b])]
  assert len(set(names)) == 2


def test_collect_runs_errors_name_the_dir(tmp_path, run_dirs):
  missing = str(tmp_path / "nothing_here")
  with pytest.raises(ValueError, match="nothing_here.*results.json"):
    pareto.collect_runs(run_dirs + [missing])
  bad = tmp_path / "bad_json"
  bad.mkdir()
  (bad / "results.json").write_text("{not json")
  with pytest.raises(ValueError, match="bad_json.*malformed"):
    pareto.collect_runs([str(bad)])
  no_final = tmp_path / "no_final"
  no_final.mkdir()
  (no_final / "results.json").write_text(json.dumps({"method": "iaat"}))
  with pytest.raises(ValueError, match="no_final.*final"):
    pareto.collect_runs([str(no_final)])
  with pytest.raises(ValueError):
    pareto.collect_runs([])


def _read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8).startswith(b"\x89PNG")
  assert os.path.getsize(path) > 2048


def test_write_pareto(tmp_path, run_dirs):
  runs = pareto.collect_runs(run_dirs)
  csv_path, png_path = pareto.write_pareto(runs, str(tmp_path / "out"))
  assert os.path.basename(csv_path) == "pareto.csv"
  assert os.path.basename(png_path) == "pareto.png"
  _assert_png(png_path)
  rows = _read_csv(csv_path)
  assert list(rows[0]) == list(pareto.CSV_FIELDS)
  on_front = {r["name"] for r in rows if r["on_front"] == "1"}
  # pgd_4 (0.40, 0.88) and cheap (0.42, 0.85) are dominated by iaat_8.
  assert on_front == {"iaat_8", "pgd_8", "standard"}
  iaat = next(r for r in rows if r["name"] == "iaat_8")
  assert float(iaat["robust_accuracy"]) == 0.45
  assert float(iaat["train_eps"]) == pytest.approx(8 / 255)


def _run_cli(*args):
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run(
    [sys.executable, "-m", "iaat_tf.pareto", *args],
    capture_output=True,
    text=True,
    cwd=REPO,
    env=env,
    timeout=60,
    check=False,
  )


def test_cli_end_to_end_with_glob(tmp_path, run_dirs):
  out_dir = tmp_path / "runs" / "report"  # Inside the glob: skipped.
  out_dir.mkdir()
  pattern = str(tmp_path / "runs" / "*")
  proc = _run_cli(f"--runs={pattern},{run_dirs[0]}", f"--out_dir={out_dir}")
  assert proc.returncode == 0, proc.stderr
  csv_path, png_path = proc.stdout.split()
  assert csv_path == str(out_dir / "pareto.csv")
  assert png_path == str(out_dir / "pareto.png")
  _assert_png(png_path)
  assert len(_read_csv(csv_path)) == len(run_dirs)


def test_cli_missing_results_json(tmp_path, run_dirs):
  missing = tmp_path / "empty_run"
  missing.mkdir()
  proc = _run_cli(f"--runs={run_dirs[0]},{missing}", f"--out_dir={tmp_path / 'out'}")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert "empty_run" in lines[0] and "results.json" in lines[0]
  assert not (tmp_path / "out" / "pareto.csv").exists()


def test_labels_in_words_and_the_axis_names_the_metric(run_dirs, tmp_path):
  runs = {r["name"]: r for r in pareto.collect_runs(run_dirs)}
  assert pareto.point_label(runs["pgd_8"]) == "PGD-AT at 8/255"
  assert pareto.point_label(runs["iaat_8"]) == "IAAT, warmup 8/255"
  assert pareto.point_label(runs["cheap"]) == "cheap IAAT, warmup 8/255"
  assert pareto.point_label(runs["standard"]) == "standard training"
  assert (
    pareto.point_label({"method": "pgd_at", "train_eps": 0.3}, per_255=False) == "PGD-AT at 0.3"
  )
  mixed = pareto.robust_axis_label(list(runs.values()))
  assert "worst case where evaluated, else PGD" in mixed and "8/255" in mixed
  worst = pareto.robust_axis_label([runs["iaat_8"], runs["pgd_8"]])
  assert worst.startswith("worst-case robust accuracy")
  csv_path, png_path = pareto.write_pareto(list(runs.values()), str(tmp_path / "o"))
  mask = os.umask(0)
  os.umask(mask)
  for path in (csv_path, png_path):
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


def test_cli_errors_are_one_line_with_the_program_name(tmp_path):
  for args, message in (
    (["--bogus"], "Unknown command line flag 'bogus'"),
    (["--runs=x"], "--out_dir is required"),
  ):
    proc = _run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iaat_tf.pareto: error: ")
    assert message in lines[0]
