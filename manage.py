#!/usr/bin/env python
"""Django's command-line utility for Moat.

In a checkout where `make run` ran, a command finds the platform `make run` serves with nothing to export: what the
environment does not set comes from the state folder (`embedded.local_environment`)."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if os.environ["DJANGO_SETTINGS_MODULE"] == "config.settings":
        from embedded import local_environment

        state = Path(os.environ.get("MOAT_STATE_DIR") or Path(__file__).resolve().parent / ".moat")
        os.environ.update(local_environment(state))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
