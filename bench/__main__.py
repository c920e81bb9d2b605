"""`python -m bench [--quick]`: real traffic (wrk, one user and 5,000 users), then the
permission checks at 10k and 100k nodes; prints the tables. Exits 1 if a target is missed."""

from __future__ import annotations

import sys

from bench import permissions, traffic
from bench.common import print_table


def main() -> int:
    quick = "--quick" in sys.argv
    print("running bench.traffic ...", file=sys.stderr, flush=True)
    met = traffic.main(["--quick"] if quick else [])
    print("running bench.permissions ...", file=sys.stderr, flush=True)
    print()
    print_table(permissions.run(quick=quick))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
