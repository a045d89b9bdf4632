"""``python -m bench [NAME ...]``: run benchmarks, write bench/results/<name>.json, print one table.

Without names it runs every module in this package that defines ``run() -> dict``. A benchmark that
raises is reported and makes the exit status 1, but does not stop the others. A missed target is
shown in the table and does not change the exit status: results are data, not a gate.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from types import ModuleType

import bench
from bench import common

_NOT_BENCHMARKS = {"__main__", "common"}


def discover() -> dict[str, ModuleType]:
    """Benchmark modules by name: those in this package that define a callable ``run``."""
    found = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.ispkg or info.name in _NOT_BENCHMARKS:
            continue
        mod = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(mod, "run", None)):
            found[info.name] = mod
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)

    available = discover()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    selected = args.names or list(available)

    results, failed = [], []
    for name in selected:
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        try:
            result = available[name].run()
            path = common.write_result(result)
        except Exception:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"bench: wrote {path}", file=sys.stderr, flush=True)
        results.append(result)

    if results:
        print(common.format_table(results))
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
