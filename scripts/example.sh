#!/usr/bin/env bash
# The README's first command: install pytest-maccbudget with torch, check the example project's
# model budgets with pytest, then profile a real ONNX model without pytest.
# torch is pinned to the CPU build that installs from local disk; an unpinned torch pulls CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[torch]" "torch==2.13.0"

echo "== pytest --macc-budget in examples/ (budgets in examples/macc_budget.yaml)"
(cd examples && python -m pytest --macc-budget)

echo
echo "== maccbudget profile: ResNet-50 from the onnx wheel"
zoo="$(python -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')/backend/test/data/light"
maccbudget profile "$zoo/light_resnet50.onnx" --top 10
