"""`python -m bench [--quick]`: real traffic (wrk, one user and 5,000 users), the
permission checks at 10k and 100k nodes, the event-loop time of a flag-usage flush,
/health under costly patterns (bench.regex) and 10,000 OFREP event streams (bench.streams;
2,000 with --quick); prints the tables. Exits 1 if a target is missed."""

from __future__ import annotations

import sys

from bench import permissions, regex, streams, traffic, usage_flush
from bench.common import print_table


def main() -> int:
    quick = "--quick" in sys.argv
    print("running bench.traffic ...", file=sys.stderr, flush=True)
    met = traffic.main(["--quick"] if quick else [])
    print("running bench.permissions ...", file=sys.stderr, flush=True)
    print()
    print_table(permissions.run(quick=quick))
    print("running bench.usage_flush ...", file=sys.stderr, flush=True)
    print()
    flush = usage_flush.run()
    print_table(flush)
    print("running bench.regex ...", file=sys.stderr, flush=True)
    print()
    patterns_met = regex.main(["--quick"] if quick else [])
    print("running bench.streams ...", file=sys.stderr, flush=True)
    print()
    streams_met = streams.main(["--quick", "--streams", "2000"] if quick else [])
    flush_met = flush[0].value <= usage_flush.TARGET_MS
    return 0 if met and patterns_met and flush_met and streams_met else 1


if __name__ == "__main__":
    sys.exit(main())
