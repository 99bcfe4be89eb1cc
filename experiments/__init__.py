"""Accuracy studies, one folder each: the code that makes a result beside its pages.

Run from the repository root as modules, e.g.
`python -m experiments.frontier_digits.radius_dynamics`. Timing studies are bench/.
"""
