#!/usr/bin/env bash
# Install pytest-maccbudget with its test extras and run the test suite (the README's second command).
# torch is pinned to the CPU build that installs from local disk; an unpinned torch pulls CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test,torch]" "torch==2.13.0"
exec python -m pytest -n 2 "$@"
