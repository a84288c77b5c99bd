#!/bin/sh
# The container image's install step (deploy/Containerfile RUNs it; tests/test_deploy.py runs it in a
# fresh virtual environment here): torch 2.13.0 first, so that nothing later pulls a CUDA build (the CPU
# wheel comes from TWIN_TORCH_INDEX, the PyTorch CPU index in the image build), then the project
# without its dev extras, then `twin --help` as the proof that the entry point and its plug-ins load.
#
#   deploy/image-install.sh SOURCE_DIR VENV
#   TWIN_TORCH_INDEX=https://download.pytorch.org/whl/cpu deploy/image-install.sh /src /opt/ran-twin/venv
set -eu
src="${1:?usage: image-install.sh SOURCE_DIR VENV}"
venv="${2:?usage: image-install.sh SOURCE_DIR VENV}"
python="${PYTHON:-python3}"

"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { echo "image-install: Python 3.11 is required" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip="$venv/bin/python -m pip --disable-pip-version-check -q"
if [ -n "${TWIN_TORCH_INDEX:-}" ]; then
    $pip install --index-url "$TWIN_TORCH_INDEX" torch==2.13.0
else
    $pip install torch==2.13.0
fi
$pip install "$src"
"$venv/bin/twin" --help >/dev/null
echo "image-install: ran-twin installed in $venv"
