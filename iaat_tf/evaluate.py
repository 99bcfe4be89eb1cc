"""`python -m iaat_tf.evaluate`: the evaluation command, iaat_tf/cli/evaluate.py."""

from iaat_tf.cli.evaluate import main

if __name__ == "__main__":
  main()
