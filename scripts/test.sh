#!/usr/bin/env bash
# Install pytest-maccbudget with its test extras and run the test suite (the README's second command).
# torch is pinned to the CPU build that installs from local disk; an unpinned torch pulls CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test,torch,calibrate]" "torch==2.13.0"
# mermaid (pinned in tests/node/package-lock.json) for tests/test_mermaid.py: installed when the
# lock file is newer than the last install (npm rewrites node_modules/.package-lock.json), so a
# repeated run costs nothing. Without npm the step is skipped (the test skips without node, or fails naming
# the command).
if command -v npm >/dev/null && [ ! tests/node/node_modules/.package-lock.json -nt tests/node/package-lock.json ]; then
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi
exec python -m pytest -n 2 "$@"
