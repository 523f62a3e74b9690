#!/usr/bin/env bash
# Idempotent set-up shared by the README's two commands (sourced, not run on its own):
# Debian packages (FashionMNIST data, python3-venv, optionally chromium), a virtual environment
# in .venv with the pinned requirements, and gnilab installed in editable mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv python3-pip)
if [ "${GNILAB_WITH_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "gnilab setup: installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

stamp=.venv/.gnilab-requirements
if [ ! -x .venv/bin/python ]; then
  echo "gnilab setup: creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt "$stamp" 2>/dev/null; then
  echo "gnilab setup: installing pinned requirements into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  cp requirements.txt "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
