"""``python -m endcap.offers.report --root ROOT``: the lift report from the offers service's record.

Reads ``ROOT/var/lib/endcap/offers/offers.db`` read-only (safe while the service runs) and prints the
KPIs per arm with their 95 % intervals (docs/offers.md, "Reading the lift report"); ``--json`` prints
the same as JSON. Exit 0, or 2 when there is no record yet.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..core.paths import Paths
    from .lift import format_report
    from .store import lift_report

    p = argparse.ArgumentParser(prog="python -m endcap.offers.report", description="Offers lift report")
    p.add_argument("--root", default="/")
    p.add_argument("--window-s", type=float, default=7200.0, help="attribution window (default 7200 s)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    db = Paths.under(args.root).service_state("offers") / "offers.db"
    if not db.is_file():
        print(f"{db}: no offers record yet", file=sys.stderr)
        return 2
    report = lift_report(db, args.window_s)
    print(json.dumps(report, indent=1, default=str) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
