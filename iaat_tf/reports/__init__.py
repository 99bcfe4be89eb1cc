"""Pictures, tables and verdicts for people: eps-table plots, curves, history,
the frontier's statistics (`stats`, `frontier`, `sequential`: --seeds=auto).

Imported by the command line only (`iaat_tf.cli`): training, attacks and
evaluation never import it.
"""
