"""`python -m api.flags.import flags.json --actor EMAIL [--apply] [--prune]` (see
api/flags/cli.py)."""

import sys

from api.flags.cli import import_main

if __name__ == "__main__":
    sys.exit(import_main())
