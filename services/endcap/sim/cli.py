"""``endcap sim``: replay a Complete Journey store into a POS database, with faults on demand.

Responsibility: parse and check the command line, wire dataset → source → simulator, print progress
lines on stdout, stop cleanly on Ctrl-C/SIGTERM. Exit codes: 0 done or stopped; 2 bad input (unknown
fault, unknown store, unusable source, bad number), reported as one line on stderr naming the input
and the reason; 1 a database failure during the replay. Under a parent that sets NOTIFY_SOCKET
(systemd, ``endcap run``) it reports READY=1 once the catalogue and counts are written.
"""
from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

PROG = "endcap sim"
log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump: the message names the option
        print(f"{PROG}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Replay a real store's baskets into an OSPOS-shaped POS database.")
    p.add_argument("--source", required=True, help="sqlite:///ABS/PATH.db or a PostgreSQL URL/conninfo")
    p.add_argument("--store", type=int, default=367, help="Complete Journey store id (default 367)")
    p.add_argument("--speed", type=float, default=3600.0,
                   help="source seconds per wall second; 'inf' = as fast as possible (default 3600)")
    p.add_argument("--faults", default="none", help=f"all | none | comma list of: {', '.join(_fault_names())}")
    p.add_argument("--max-lines", type=int, default=None, help="stop after about N sale lines (whole baskets)")
    p.add_argument("--seed", type=int, default=1, help="fault plan and stock seed (default 1)")
    p.add_argument("--late-max-s", type=float, default=240.0, help="how far late sales are back-dated (s)")
    p.add_argument("--reset", action="store_true", help="drop the POS tables first (ALL their rows)")
    return p


def _fault_names() -> tuple[str, ...]:
    from endcap.sim.faults import ALL_FAULTS

    return ALL_FAULTS


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` (the replay then commits and returns) instead of raising mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread; the caller stops us through its own event
        return
    handler = lambda signum, frame: stop.set()  # noqa: E731
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _notify(state: str) -> None:
    """sd_notify for a parent that set NOTIFY_SOCKET (systemd, ``endcap run``); a no-op otherwise."""
    from endcap.core.systemd import Notifier

    try:
        Notifier().notify(state)
    except OSError as e:  # the parent went away: nobody is waiting for the news
        log.warning("sd_notify %s failed: %s", state.split("\n")[0], e)


def _print_progress(p) -> None:
    from endcap.sim.sourcedb import us_to_text

    faults = " ".join(f"{k}={v}" for k, v in sorted(p.faults.items())) or "-"
    state = "done" if p.done else "running"
    print(f"sim: {p.baskets}/{p.total} baskets, {p.lines} lines, source time {us_to_text(p.source_us)[:19]},"
          f" faults {faults} ({state})", flush=True)


def main(argv: Optional[Sequence[str]] = None, stop_event: Optional[threading.Event] = None) -> int:
    """Run ``endcap sim``; ``stop_event`` lets an embedding caller (``endcap run``, tests) stop it."""
    from endcap.sim.faults import parse_faults

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0)
    if not args.speed > 0:
        return _fail(f"--speed {args.speed}: must be > 0 (or inf)")
    if args.max_lines is not None and args.max_lines < 0:
        return _fail(f"--max-lines {args.max_lines}: must be >= 0")
    if not (math.isfinite(args.late_max_s) and args.late_max_s >= 1):
        return _fail(f"--late-max-s {args.late_max_s}: must be >= 1")
    try:
        faults = parse_faults(args.faults)
    except ValueError as e:
        return _fail(f"--faults {args.faults}: {e}")

    stop = stop_event or threading.Event()
    with _stop_on_signals(stop):
        return _replay(args, faults, stop)


def _replay(args: argparse.Namespace, faults: frozenset[str], stop: threading.Event) -> int:
    from endcap.sim.dataset import load_store
    from endcap.sim.errors import SimError
    from endcap.sim.replay import Simulator
    from endcap.sim.sourcedb import open_source, redact

    try:
        data = load_store(args.store, max_lines=args.max_lines)
    except SimError as e:
        return _fail(str(e))
    try:
        source = open_source(args.source)
    except SimError as e:
        return _fail(str(e))
    try:
        sim = Simulator(source, data, speed=args.speed, faults=faults, seed=args.seed, late_max_s=args.late_max_s)
        try:
            sim.prepare(reset=args.reset)
        except SimError as e:
            return _fail(str(e))
        print(f"sim: store {data.store_id}: {len(data.items)} items, {len(data.baskets)} baskets,"
              f" {data.line_count} lines into {redact(args.source)} at speed {args.speed:g},"
              f" faults {','.join(sorted(faults)) or 'none'}", flush=True)
        _notify("READY=1\nSTATUS=replaying")  # `endcap run` starts the services once the catalogue is in
        try:
            sim.run(stop, progress=_print_progress, progress_every_s=2.0)
        except SimError as e:
            print(f"{PROG}: error: replay failed: {e}", file=sys.stderr)
            return 1
        print("sim: stopped" if not sim.done else "sim: finished", flush=True)
        return 0
    finally:
        source.close()
