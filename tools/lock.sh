#!/usr/bin/env sh
# Regenerates requirements/lock-x86_64.txt, the whole dependency tree pinned for x86-64 Linux
# (Python >= 3.10). The README's install command and .ci/run install through it, so a fresh
# machine gets the same versions whatever is published later. Every pin carries the marker
# platform_machine == "x86_64": on a Jetson (aarch64) it applies nowhere and JetPack's own
# torch/torchaudio stay (see the README's Jetson section and tools/check_jetson_deps.py).
# Needs uv (pip install uv). Run from the repository root after changing dependencies.
set -eu
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml --extra dev \
  --constraint requirements/pins.in \
  --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command "tools/lock.sh" \
  --quiet --output-file requirements/lock-x86_64.txt
sed -i -E 's/^([A-Za-z0-9_.-]+==[^ ;]+)$/\1 ; platform_machine == "x86_64"/' \
  requirements/lock-x86_64.txt
