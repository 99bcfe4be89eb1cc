"""`python -m iaat_tf.main`: the training command, iaat_tf/cli/train.py."""

from iaat_tf.cli.train import main

if __name__ == "__main__":
  main()
