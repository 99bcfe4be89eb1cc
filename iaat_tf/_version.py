"""The package's one version number (pyproject.toml reads it from here)."""

__version__ = "0.7.0"
