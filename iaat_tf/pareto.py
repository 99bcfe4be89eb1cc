"""`python -m iaat_tf.pareto`: the Pareto command, iaat_tf/cli/pareto.py."""

from iaat_tf.cli.pareto import main

if __name__ == "__main__":
  main()
