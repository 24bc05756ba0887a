# Sourced by the Makefile and scripts: points torch-sys at the repo's venv torch.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
