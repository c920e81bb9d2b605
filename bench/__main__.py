"""`python -m bench [--quick]`: every benchmark, one table."""

from __future__ import annotations

import sys

from bench import flags, permissions, session_check
from bench.common import print_table


def main() -> None:
    quick = "--quick" in sys.argv
    rows = []
    for module in (session_check, flags, permissions):
        print(f"running {module.__name__} ...", file=sys.stderr, flush=True)
        rows += module.run(quick=quick)
    print_table(rows)


if __name__ == "__main__":
    main()
