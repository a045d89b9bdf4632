"""Endcap's benchmarks (DESIGN.md §7).

Every module here that defines ``run() -> dict`` is a benchmark: it measures our code and its anchor
in the same process run and returns a result built by ``common.make_result``. ``python -m bench``
runs them, writes ``bench/results/<name>.json`` and prints one table. Nothing runs at import time.
"""
