"""Benchmarks that print tables of ratios measured in one run (the machine is shared and
noisy, so absolute numbers matter less than ratios taken side by side).

`python -m bench` runs the real-traffic benchmark (bench/traffic.py, wrk as the one load
generator) and the permission checks, and prints their tables; each module also runs alone
(`python -m bench.traffic`, `python -m bench.permissions`, `python -m bench.soak`).
"""
