"""The ``endcap`` command: run one service, check a config, run the whole gateway on a dev host."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core import config as core_config
from .core.errors import ConfigError
from .core.paths import Paths


def _load_config(path: Path):
    from .gateway import config_schema

    return core_config.load(path, config_schema())


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    try:
        _load_config(path)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from .core.logging import configure
    from .core.runner import EXIT_CONFIG, ServiceContext, run_service
    from .gateway import SERVICES

    spec = SERVICES.get(args.name)
    if spec is None:
        print(f"service {args.name!r}: unknown; known: {', '.join(sorted(SERVICES))}", file=sys.stderr)
        return 1
    paths = Paths.under(args.root)
    cfg_path = Path(args.config) if args.config else paths.config_file
    try:
        cfg = _load_config(cfg_path)
    except ConfigError as e:
        configure(args.name)
        for p in e.problems:
            print(f"{cfg_path}: {p}", file=sys.stderr)
        return EXIT_CONFIG
    section = getattr(cfg, args.name)
    if section is None:
        print(f"{cfg_path}: {args.name}: section [{args.name}] is missing; the service needs it", file=sys.stderr)
        return EXIT_CONFIG
    ctx = ServiceContext(args.name, paths, section)
    return run_service(ctx, spec.main_function(), log_level=cfg.core.log_level)


def cmd_run(args: argparse.Namespace) -> int:
    from .devrun import run_gateway

    return run_gateway(root=args.root, speed=args.speed, duration_s=args.duration, faults=args.faults)


def cmd_sim(args: argparse.Namespace, rest: list[str]) -> int:
    from .sim.cli import main as sim_main

    return sim_main(rest)


def cmd_bus_watch(args: argparse.Namespace) -> int:
    from .core.watch import unknown_services, watch
    from .core.errors import BusError
    from .gateway import SERVICES

    names = args.service or list(SERVICES)
    bad = unknown_services(names, SERVICES)
    if bad:
        print(f"--service {', '.join(bad)}: unknown; known: {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    if args.count < 0 or args.timeout < 0:
        print(f"--count {args.count} / --timeout {args.timeout}: must not be negative (0: no limit)", file=sys.stderr)
        return 2
    try:
        watch(Paths.under(args.root), names, args.count, args.timeout)
    except BusError as e:
        print(f"endcap bus watch: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C is how a technician stops it
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endcap", description="Endcap retail edge gateway")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("service", help="run one service in the foreground (what the systemd units call)")
    s.add_argument("name")
    s.add_argument("--root", default="/", help="filesystem root for config, sockets and state (default /)")
    s.add_argument("--config", help="config file (default ROOT/etc/endcap/endcap.toml)")
    s.set_defaults(func=cmd_service)

    s = sub.add_parser("check-config", help="validate a config file; prints section.key: reason lines")
    s.add_argument("file")
    s.set_defaults(func=cmd_check_config)

    s = sub.add_parser("run", help="run the whole gateway on this host with a simulated store")
    s.add_argument("--root", help="keep state here (default: a fresh temp dir)")
    s.add_argument("--speed", type=float, default=3600.0, help="simulated store seconds per real second (default 3600)")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.add_argument("--faults", default="none", help="simulator faults: none, all, or a comma list")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("sim", help="the store simulator (dev tool); see `endcap sim --help`", add_help=False)
    s.set_defaults(func=None)

    s = sub.add_parser("bus", help="look at the bus")
    bsub = s.add_subparsers(dest="bus_command", required=True)
    w = bsub.add_parser("watch", help="print messages as they are published (on a gateway too)",
                        description="Print one line per bus message: time, topic, publishing service, summary. "
                                    "Runs until Ctrl-C, --count or --timeout.")
    w.add_argument("--root", default="/", help="filesystem root whose run/endcap sockets to watch (default /)")
    w.add_argument("--service", action="append",
                   help="only this publisher (repeatable; default every service of the gateway)")
    w.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    w.add_argument("--timeout", type=float, default=0, help="stop after N seconds (0: never)")
    w.set_defaults(func=cmd_bus_watch)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        return cmd_sim(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
