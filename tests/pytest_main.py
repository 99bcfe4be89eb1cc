"""Runs pytest on the files given as arguments (the entry point of Bazel's py_test)."""

import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
