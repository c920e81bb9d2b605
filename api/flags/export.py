"""`python -m api.flags.export --actor EMAIL > flags.json` (see api/flags/cli.py)."""

import sys

from api.flags.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
