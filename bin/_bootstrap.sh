# Sourced by bin/run and bin/test: find Python 3.11, make .venv, install the project (editable) when needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export MOAT_STATE_DIR="${MOAT_STATE_DIR:-$ROOT/.moat}"
mkdir -p "$MOAT_STATE_DIR"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  echo "==> installing Debian packages: $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PYTHON="$(command -v python3.11 || true)"
if [ -z "$PYTHON" ] && command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  PYTHON="$(command -v python3)"
fi
[ -n "$PYTHON" ] || { echo "Moat needs Python 3.11 (python3.11 on PATH)." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PYTHON" >&2
  "$PYTHON" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3.11-venv || apt_install python3-venv; "$PYTHON" -m venv .venv; }
fi

# Reinstall only when the dependency list changed: a second run starts in seconds.
EXTRAS="${MOAT_EXTRAS:-}"
STAMP=".venv/.moat-installed${EXTRAS:+-$EXTRAS}"
WANT="$(cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "==> installing Moat and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
  if [ -n "$EXTRAS" ]; then
    # The official Python client (clients/python): the tests drive it against the real server.
    .venv/bin/python -m pip install -q -e clients/python
  fi
  echo "$WANT" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
