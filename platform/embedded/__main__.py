"""`python -m embedded STATE_DIR`: print `export NAME=value` lines for the servers that stand in for unset ones."""

import shlex
import sys
from pathlib import Path

from embedded import ensure_services

if __name__ == "__main__":
    state = Path(sys.argv[1] if len(sys.argv) > 1 else ".moat").resolve()
    for name, value in ensure_services(state).items():
        print(f"export {name}={shlex.quote(value)}")
