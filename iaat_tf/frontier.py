"""`python -m iaat_tf.frontier`: the frontier command, iaat_tf/cli/frontier.py."""

from iaat_tf.cli.frontier import main

if __name__ == "__main__":
  main()
