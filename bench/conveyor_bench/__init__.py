"""Conveyor's benchmark: `make bench` (see docs/performance.md).

`conveyor_bench.run` drives Docker Compose from the host; `conveyor_bench.agent` runs
inside the bench containers, next to the systems it measures.
"""
