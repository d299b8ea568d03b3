#!/usr/bin/env bash
# One command for a new user: set everything up and run the main job on built-in sample data.
#   1. system libraries a headless napari needs (Xvfb, Mesa OpenGL), through apt-get when present;
#   2. a virtual environment in .venv with the plugin, napari (PyQt6) and the test tools;
#   3. convert the built-in synthetic slide into a tiled OME-Zarr pyramid and describe it.
set -euo pipefail
cd "$(dirname "$0")/.."
extra_packages=()
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  extra_packages+=(python3-venv)
fi
if command -v apt-get >/dev/null 2>&1; then
  bash scripts/system-packages.sh "${extra_packages[@]}"
else
  echo "quickstart: no apt-get here; skipping system packages (a desktop napari needs none)" >&2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "quickstart: napari-zarr-tiler needs Python 3.11 or newer (zarr 3 does); found $(python3 --version)" >&2
  exit 1
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "quickstart: Python's venv module is missing; install it (e.g. python3-venv)" >&2
  exit 1
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[testing]"
.venv/bin/napari-zarr-tiler convert sample:slide_uint16 sample_slide.zarr --chunks 512 --overwrite
.venv/bin/napari-zarr-tiler info sample_slide.zarr
echo
echo "Done. Open the pyramid in napari with:  .venv/bin/napari --plugin napari-zarr-tiler sample_slide.zarr"
echo "  (without a display, e.g. over ssh:      xvfb-run -a .venv/bin/napari --plugin napari-zarr-tiler sample_slide.zarr)"
echo "Use the command line:                   source .venv/bin/activate; napari-zarr-tiler --help"
echo "Run the tests with:                     .venv/bin/python -m pytest"
