"""A progress line with an ETA for long evaluations (terminal or log)."""

import sys
import time
from typing import Callable, Optional


class ProgressLine:
  """progress(done, total) for robustness.evaluate_robustness, with an ETA.

  On a terminal one line is rewritten in place; in a log, a line at every
  tenth of the work (and the last batch).
  """

  def __init__(self, total: int, log: Callable[[str], None], tty: Optional[bool] = None):
    self.total, self.log = total, log
    self.tty = sys.stdout.isatty() if tty is None else tty
    self.start = time.perf_counter()
    self.shown = 0

  def __call__(self, done: int, total: Optional[int] = None) -> None:
    total = total or self.total
    elapsed = time.perf_counter() - self.start
    eta = elapsed / max(done, 1) * max(total - done, 0)
    text = (
      f"evaluate: batch {done}/{total} ({100 * done // max(total, 1)}%), "
      f"{elapsed:.0f}s elapsed, ETA {eta:.0f}s"
    )
    if self.tty and self.log is print:
      end = "\n" if done >= total else ""
      print("\r" + text, end=end, flush=True)
      return
    tenth = 10 * done // max(total, 1)
    if tenth > self.shown or done >= total:
      self.shown = tenth
      self.log(text)
