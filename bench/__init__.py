"""Benchmarks that print tables of ratios measured in one run (the machine is shared and
noisy, so absolute numbers matter less than ratios taken side by side).

Each module exposes `run(quick: bool) -> list[Row]`; `python -m bench` runs them all and
prints one table, and each module also runs alone (`python -m bench.flags`).
"""
