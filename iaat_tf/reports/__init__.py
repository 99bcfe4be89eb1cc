"""Pictures, tables and verdicts for people: eps-table plots, curves, history,
the frontier's statistics (`stats`, `seed_summary`, `pieces`, `power`,
`frontier`, `sequential`: --seeds=auto; `calibration`: the worlds that
measure the verdict).

Imported by what a run does (`iaat_tf.runs`) and by experiments/: training,
attacks and evaluation never import it.
"""
