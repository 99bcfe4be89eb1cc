"""The frontier's verdict in words and as a Markdown table.

Generated from the structured fields `reports/frontier.py` computes (never
the other way round), so the page says what frontier.json holds: a
`not_comparable` line prints no gap, every interval names its level, a
PGD-AT radius with more of both is named with its intervals, and a setting
judged at an earlier look of `--seeds=auto` says which look its numbers
come from.
"""

from typing import Mapping, Optional, Sequence

from iaat_tf.reports import power, stats
from iaat_tf.reports.seed_summary import FAILURE_RULE, UNIFORM, learned


def pct(v: Optional[float]) -> str:
  return "n/a" if v is None else f"{100 * v:.1f}"


def ci_words(ci) -> str:
  if not ci or ci[0] is None or ci[1] is None:
    return "no interval (one seed)"
  return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def level_words(s: Mapping) -> str:
  return f"{100 * s.get('gap_level', stats.LEVEL):.3g}%"


def _point(s: Mapping) -> str:
  return (
    f"clean {pct(s['clean_mean'])} +- {pct(s['clean_std'])}, AutoAttack "
    f"{pct(s['autoattack_mean'])} +- {pct(s['autoattack_std'])}"
  )


_SAYS = {
  "above": "above uniform PGD-AT's frontier, the line joining the radii tried: the seeds tell",
  "below": "below uniform PGD-AT's frontier: the seeds tell",
  "cannot_tell": "the seeds cannot tell it from uniform PGD-AT's frontier",
}


def _pieces_words(s: Mapping) -> str:
  pieces = s.get("pieces") or []
  if len(pieces) < 2:
    return ""
  names = []
  for p in pieces:
    if p["piece"] == "segment":
      names.append(f"{p['between'][0]}-{p['between'][1]} ({p['shows'].replace('_', ' ')})")
    elif p["piece"] == "flat":
      shown = "below" if p["shows"] == "below" else "not below; nothing else can be shown"
      names.append(f"less clean than {p['between'][0]} ({shown})")
    else:
      names.append(f"more clean than {p['between'][0]} (nothing to compare with)")
  return f" over the {len(pieces)} pieces its clean accuracy may lie on: " + "; ".join(names)


def _dominance_words(s: Mapping) -> str:
  out = []
  for d in s.get("dominated_by") or []:
    out.append(
      f"{d['setting']} has more clean ({100 * d['clean']:+.1f} {ci_words(d['clean_ci'])}) and "
      f"more AutoAttack accuracy ({100 * d['autoattack']:+.1f} {ci_words(d['autoattack_ci'])}) "
      f"in the means, both higher on {d['seeds_both']} shared seeds"
      + ("; both intervals above 0: dominated" if d["confident"] else "")
    )
  return "" if not out else "; " + "; ".join(out)


def _power_words(s: Mapping) -> str:
  words = ""
  if s.get("detectable_gap") is not None:
    words = (
      f"; these seeds find an advantage of {100 * s['detectable_gap']:.1f} points "
      f"{100 * stats.POWER:.0f}% of the time"
    )
  elif "detectable_gap" in s and s.get("gap_se"):
    words = (
      f"; these seeds find no advantage, however large, {100 * stats.POWER:.0f}% of the time "
      "(its clean accuracy may lie where only below can be shown, or beyond the frontier)"
    )
  if s.get("detect"):
    n = s.get("seeds_to_detect")
    size = f"{100 * s['detect']:.3g} points"
    words += (
      f"; about {n} seeds per setting would find {size}"
      if n
      else f"; more than {power.MOST_SEEDS} seeds per setting would be needed to find {size}"
      if s.get("gap_se")
      else ""
    )
  return words


def _look_words(s: Mapping) -> str:
  if not s.get("stopped"):
    return ""
  look = s.get("look")
  if not look:
    return f" ({s['stopped']})"
  seeds = ", ".join(f"{name} {n}" for name, n in look["seeds"].items())
  return f" ({s['stopped']}; numbers of look {look['round']}: seeds {seeds})"


def setting_line(s: Mapping, by_name: Mapping[str, Mapping]) -> str:
  """One adaptive setting's verdict in words, from its fields."""
  head = f"{s['setting']} (learns on {s['learns']} seeds)"
  if not learned(s):
    return f"{head}: not comparable: {s['reason']}{_look_words(s)}."
  point = _point(s.get("look", {}).get("means") or s)
  if s["verdict"] == "not_comparable" or s.get("gap") is None:
    return f"{head}: {point}: not comparable: {s['reason']}{_dominance_words(s)}{_look_words(s)}."
  against = ", ".join(f"{n} (learns on {by_name[n]['learns']})" for n in s["compared_with"])
  where = (
    "at the same clean accuracy, between "
    if len(s["compared_with"]) > 1
    else "at the same clean accuracy, at "
    if s["frontier_basis"] == "interpolated"
    else "against the frontier point with more clean accuracy, "
  )
  says = _SAYS[s["verdict"]]
  if s["verdict"] == "below" and str(s.get("reason") or "").startswith("dominated"):
    says = f"below uniform PGD-AT: {s['reason']}"
  if s["verdict"] == "above" and len(s["compared_with"]) > 1:
    # A concave PGD-AT curve lies above its chords: an untried radius between
    # the two may reach the setting (docs/frontier.md, "What above means").
    says += f" (the control: a PGD-AT radius between {' and '.join(s['compared_with'])})"
  return (
    f"{head}: {point}; {where}{against}: gap {100 * s['gap']:+.1f} AutoAttack points, "
    f"{level_words(s)} interval {ci_words(s['gap_ci'])}{_pieces_words(s)}: {says}"
    f"{_dominance_words(s)}{_power_words(s)}{_look_words(s)}."
  )


def verdict(settings: Sequence[Mapping]) -> list[str]:
  """Plain-words lines: the rules, reliability, which settings are on the
  frontier, and each adaptive setting's structured verdict."""
  seeds = sorted({len(s["seeds"]) for s in settings})
  lines = [
    f"Judged by AutoAttack over {'/'.join(map(str, seeds))} seeds per setting; "
    "accuracies are mean +- std over the seeds that learn; intervals are "
    "Student's t (paired by seed where the settings share their seeds), 95% "
    "for accuracies, each gap's at the level it states; a gap's interval holds over "
    "every piece of PGD-AT's frontier the setting's clean accuracy may lie on.",
    f"Failed runs: {FAILURE_RULE}.",
    "Learns: " + ", ".join(f"{s['setting']} {s['learns']}" for s in settings) + ".",
  ]
  on = [s["setting"] for s in settings if s.get("on_frontier")]
  lines.append(
    "On the frontier (no other setting has both higher mean clean "
    f"and higher mean AutoAttack accuracy): {', '.join(on) or 'none'}."
  )
  by_name = {s["setting"]: s for s in settings}
  for s in settings:
    if s["method"] not in UNIFORM:
      lines.append(setting_line(s, by_name))
  return lines


def table_markdown(settings: Sequence[Mapping]) -> str:
  """The settings as a Markdown table (percent), per-seed values included
  (a failed seed is marked with why)."""
  levels = sorted({s.get("gap_level", stats.LEVEL) for s in settings if s.get("gap") is not None})
  level = "/".join(f"{100 * v:.3g}%" for v in levels) or f"{100 * stats.LEVEL:.3g}%"
  rows = [
    "| setting | learns | clean | AutoAttack | on frontier | gap to PGD-AT "
    f"frontier ({level} interval) | detectable gap (80%) | verdict | per seed (clean / AA) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for s in settings:
    gap = "" if s.get("gap") is None else f"{100 * s['gap']:+.1f} {ci_words(s['gap_ci'])}"
    mde = ""
    if s.get("detectable_gap") is not None:
      mde = f"{100 * s['detectable_gap']:.1f}"
    elif "detectable_gap" in s and s.get("gap") is not None:
      mde = "none"
    if s.get("seeds_to_detect"):
      mde += f"; ~{s['seeds_to_detect']} seeds find {100 * s['detect']:.3g}"
    seeds = "; ".join(
      f"{p['seed']}: {pct(p['clean'])} / {pct(p['autoattack'])}"
      + ("" if p["learned"] else f" failed ({p.get('failure') or 'at chance'})")
      for p in s["per_seed"]
    )
    clean = aa = "fails on every seed"
    if learned(s):
      clean = f"{pct(s['clean_mean'])} +- {pct(s['clean_std'])}"
      aa = f"{pct(s['autoattack_mean'])} +- {pct(s['autoattack_std'])}"
    rows.append(
      f"| {s['setting']} | {s['learns']} | {clean} | {aa} | "
      f"{'yes' if s['on_frontier'] else ''} | {gap} | {mde} | "
      f"{s.get('verdict', '').replace('_', ' ')} | {seeds} |"
    )
  return "\n".join(rows) + "\n"


def _seeds_words(payload: Mapping) -> str:
  if payload["seeds"] != "auto":
    return f"seeds {payload['seeds']}"
  seq = payload["sequential"]
  return (
    f"--seeds=auto: {seq['start']} each, then more where the verdict was undecided, "
    f"up to {seq['max_seeds']}; {seq['runs']} runs in {seq['rounds']} rounds; "
    f"{seq['correction']}; each setting's numbers are those of the look where it stopped"
  )


def page(payload: Mapping) -> str:
  """frontier.md: what was judged how, the table, and the verdict in words
  (`payload`: frontier.json's contents)."""
  return (
    f"# Frontier: {payload['experiment']}\n\nAutoAttack at {payload['norm']} eps "
    f"{payload['aa_eps']:.4g}; mean +- std over the seeds of each setting "
    f"({_seeds_words(payload)}); percent.\n\n"
    + table_markdown(payload["settings"])
    + "\n"
    + "\n".join(f"- {line}" for line in payload["verdict"])
    + "\n"
  )
