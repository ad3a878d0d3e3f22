"""The side-by-side benchmark harness behind python/bench.py: workloads, recorders, readers."""
