#!/usr/bin/env bash
# The README's first command: install pytest-maccbudget and profile a real model with it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e .
zoo="$(python -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')/backend/test/data/light"
maccbudget profile "$zoo/light_resnet50.onnx" --top 10
