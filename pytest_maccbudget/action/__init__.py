"""The scripts behind this repository's GitHub Action (``action.yml`` at the repository root).

Each module is a small command that one composite step of the action runs with
``python -m``; every input reaches it through the environment or argv, never through a
``${{ }}`` expression inside a shell script:

- ``pytest_args``: splits the ``pytest-args`` input the way a POSIX shell would, without
  expanding anything, and prints the words NUL-terminated for bash's ``read -d ''``.
- ``outputs``: reads the report JSON and writes the action's outputs to ``$GITHUB_OUTPUT``.
- ``comment``: creates or updates the one sticky pull-request comment holding the report.

``comment`` uses the standard library only (no pytest, torch, onnx or yaml; the report
renderer is imported only to shorten an over-long report, and is optional), so the
``workflow_run`` recipe in docs/github-action.md can run it from a bare checkout.
"""
from __future__ import annotations
