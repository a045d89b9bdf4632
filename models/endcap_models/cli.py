"""``endcap-model``: train, tune, evaluate and report on the offers basket model (NOC / data science).

    endcap-model train  --out DIR [--source cj|PATH.db] [--stores 367,...]   write a model package
    endcap-model tune   [--source ...]                                        grid on the calibration slice
    endcap-model evaluate [--json FILE] [--max-queries N]                     figures on the test weeks
    endcap-model report --out-dir DIR [--tune]                                evaluate + package + report.md; exit 1 if the gate fails
    endcap-model sign PACKAGE --key KEY.pem --chain CHAIN.pem                 write manifest.sig (endcap_models.sign)

Exit codes: 0 done (report: gate passed), 1 gate failed, 2 bad input (message on stderr).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

PROG = "endcap-model"


def _source(args):
    from .data import load_complete_journey, load_pos_sqlite

    if args.source == "cj":
        stores = [int(s) for s in args.stores.split(",")] if args.stores else None
        return load_complete_journey(stores=stores)
    return load_pos_sqlite(args.source)


def _protocol(args, data):
    from .evaluate import Protocol

    last = args.train_last_week
    if last is None:
        last = 44 if args.source == "cj" else int(data.week.max())
    test_last = 53 if args.source == "cj" else int(data.week.max())
    return Protocol(train_last_week=last, calib_weeks=args.calib_weeks, test_first_week=last + 1, test_last_week=test_last,
                    seed=args.seed, history=args.history, max_queries=getattr(args, "max_queries", None))


def _categories(args, data):
    if args.source != "cj":
        return None
    from .data import complete_journey_categories

    return complete_journey_categories(set(data.skus.tolist()))


def plain(x):
    """JSON-able builtins (numpy scalars become floats)."""
    return json.loads(json.dumps(x, default=float))


def build(args, data, proto, params, metrics: Optional[dict] = None, trained=None) -> dict:
    from .evaluate import train_calibrated
    from .package import package_size, write_package

    t0 = time.perf_counter()
    f, tables, timings = trained or train_calibrated(data, params, proto)
    masks = proto.masks(data)
    out = write_package(args.out, f, tables, version=args.version, security_epoch=args.epoch, compatible=args.compatible,
                        replace=args.replace,
                        data_range={"train": data.describe(masks["train"]), "calibration": data.describe(masks["calib"])},
                        metrics=plain(metrics or {}))
    from endcap.trust.manifest import verify_package

    man = verify_package(out).manifest
    return {"path": str(out), "bytes": package_size(out), "version": man.version, "build_s": time.perf_counter() - t0, **timings}


def cmd_train(args) -> int:
    from .train import Params

    t0 = time.perf_counter()
    data = _source(args)
    load_s = time.perf_counter() - t0
    info = build(args, data, _protocol(args, data), Params())
    print(f"wrote {info['path']}: {info['bytes']:,} bytes, version {info['version']}, "
          f"load {load_s:.1f} s + build {info['build_s']:.1f} s")
    return 0


def cmd_tune(args) -> int:
    from .evaluate import tune
    from .train import Params

    data = _source(args)
    chosen, trials = tune(data, Params(), _protocol(args, data), category_of=_categories(args, data))
    for t in trials:
        print(json.dumps(t))
    print(f"chosen: half_life_days={chosen.half_life_days} lam_basket={chosen.lam_basket} lam_history={chosen.lam_history}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate
    from .report import markdown
    from .train import Params

    data = _source(args)
    report = evaluate(data, Params(), _protocol(args, data), category_of=_categories(args, data))
    text = markdown(report)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


def cmd_report(args) -> int:
    from endcap.core.atomic import atomic_write

    from .evaluate import evaluate, train_calibrated, tune
    from .report import gate, markdown
    from .train import Params

    t0 = time.perf_counter()
    data = _source(args)
    load_s = time.perf_counter() - t0
    proto = _protocol(args, data)
    cats = _categories(args, data)
    params, trials = (tune(data, Params(), proto, category_of=cats) if args.tune else (Params(), []))
    t1 = time.perf_counter()
    trained = train_calibrated(data, params, proto)
    build_s = time.perf_counter() - t1
    report = evaluate(data, params, proto, category_of=cats, trained=trained)
    report["tuning"] = trials
    out_dir = Path(args.out_dir)
    metrics = {"hr5": {m: r["hr5"] for m, r in report["ranking"].items()},
               "ndcg5": {m: r["ndcg5"] for m, r in report["ranking"].items()},
               "calibration_max_gap": report["reliability"]["max_gap"]}
    args.out = out_dir / "package"
    args.replace = True
    report["package"] = {**build(args, data, proto, params, metrics, trained), "load_s": load_s}
    report["package"]["build_s"] += build_s
    text = markdown(report)
    atomic_write(out_dir / "report.md", text.encode())
    atomic_write(out_dir / "report.json", json.dumps(report, indent=1, default=float).encode())
    print(text)
    failed = gate(report)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train, evaluate and package the offers basket model.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(s):
        s.add_argument("--source", default="cj", help="cj (Complete Journey, default) or a gateway's pos SQLite file")
        s.add_argument("--stores", help="Complete Journey stores only (comma list; default all)")
        s.add_argument("--train-last-week", type=int, default=None, help="last training week (default 44 for cj, all for a pos file)")
        s.add_argument("--calib-weeks", type=int, default=4, help="calibration slice: the last N training weeks (default 4)")
        s.add_argument("--history", choices=("live", "frozen"), default="live")
        s.add_argument("--seed", type=int, default=0)

    def package_opts(s):
        s.add_argument("--version", help="package version (default: UTC timestamp)")
        s.add_argument("--epoch", type=int, default=0, help="security epoch (anti-rollback floor)")
        s.add_argument("--compatible", default="endcap-dev", help="device platform the package is for (the trust store checks it)")

    s = sub.add_parser("train", help="write a model package")
    common(s)
    package_opts(s)
    s.add_argument("--out", required=True)
    s.add_argument("--replace", action="store_true", help="replace an existing package directory")
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("tune", help="choose hyper-parameters on the calibration slice")
    common(s)
    s.set_defaults(func=cmd_tune)
    s = sub.add_parser("evaluate", help="figures on the test weeks")
    common(s)
    s.add_argument("--json")
    s.add_argument("--max-queries", type=int, default=None)
    s.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("report", help="tune (optional), evaluate, package, write report.md/json; exit 1 if the gate fails")
    common(s)
    package_opts(s)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--tune", action="store_true")
    s.add_argument("--max-queries", type=int, default=None)
    s.set_defaults(func=cmd_report)
    from . import sign  # the NOC's signing step (trust issue): endcap-model sign PACKAGE --key --chain

    sign.add_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ValueError, FileExistsError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
