"""`python -m embedded STATE_DIR`: print `export NAME=value` lines for what `bin/run` needs and the environment
does not set: the embedded servers standing in for unset ones, and the per-machine secrets (`platform_environment`).
"""

import shlex
import sys
from pathlib import Path

from embedded import platform_environment

if __name__ == "__main__":
    state = Path(sys.argv[1] if len(sys.argv) > 1 else ".moat").resolve()
    for name, value in platform_environment(state).items():
        print(f"export {name}={shlex.quote(value)}")
