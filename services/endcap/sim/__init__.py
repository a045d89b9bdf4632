"""Store simulator (dev tool): replays real baskets into an OSPOS-shaped POS database and injects faults.

Used by ``endcap run``, the tests and the benchmarks. Never shipped on a gateway image.
"""
