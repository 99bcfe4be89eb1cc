"""Pictures and lookups for people: eps-table plots, curves, history.

Imported by the command line only (`iaat_tf.cli`, `main`, `evaluate`,
`pareto`): training, attacks and evaluation never import it.
"""
