"""``endcap-ota``: the NOC's command line for the fleet PKI, bundles and the TUF fleet repository.

Errors print one line ``endcap-ota: <input>: <reason>`` and exit 1; bad usage exits 2 (argparse).
Repository commands take ``--repo DIR`` (the served tree) and ``--keys DIR`` (outside it), defaulting to
``$ENDCAP_OTA_REPO`` / ``$ENDCAP_OTA_KEYS``. ``refresh`` (alias ``timestamp``) is the scheduled job; it exits 1
when a role is near expiry but its keys are not in ``--keys`` (the timestamp is still refreshed).
Writing commands hold ``<repo>/.lock``; one that has to wait says so on stderr and gives up after
``--lock-wait`` seconds (exit 1, ``[locked]``, naming the lock file and the holder's PID).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from .errors import OtaError
from .lock import DEFAULT_TIMEOUT_S


def _repo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", type=Path, default=os.environ.get("ENDCAP_OTA_REPO"),
                   help="repository directory served to devices (default $ENDCAP_OTA_REPO)")
    p.add_argument("--keys", type=Path, default=os.environ.get("ENDCAP_OTA_KEYS"),
                   help="role keys directory, outside the repository (default $ENDCAP_OTA_KEYS)")
    p.add_argument("--lock-wait", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="how long a writing command waits for another writer's lock (default %(default)g)")


def _say_waiting(path: Path, pid: int | None) -> None:
    who = f"PID {pid}" if pid else "another process"
    print(f"endcap-ota: {path}: waiting for the repository lock held by {who}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="endcap-ota", description="Build, sign and roll out Endcap firmware bundles.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pki = sub.add_parser("pki", help="fleet bundle-signing PKI").add_subparsers(dest="pki_cmd", required=True)
    p = pki.add_parser("init", help="create root, intermediate, signer and keyring in DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--org", default="Endcap dev fleet")
    p.add_argument("--days", type=int, default=3650)
    p = pki.add_parser("issue-signer", help="issue a new bundle signer under the intermediate")
    p.add_argument("--pki", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("-o", "--out-dir", type=Path, help="where to write NAME.cert.pem/NAME.key.pem (default: PKI dir)")
    p.add_argument("--days", type=int, default=365)
    p = sub.add_parser("bundle", help="build a signed RAUC bundle from a rootfs image")
    p.add_argument("rootfs", type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--compatible", required=True)
    p.add_argument("--pki", type=Path, required=True)
    p.add_argument("--signer", help="signer NAME in the PKI dir (NAME.cert.pem/NAME.key.pem; default: signer)")
    p.add_argument("--format", choices=("verity", "plain"), default="verity")
    p.add_argument("--allow-plain", action="store_true", help="permit --format plain (hosts without device-mapper)")
    p.add_argument("--security-epoch", type=int, default=0)
    p.add_argument("-o", "--out", type=Path, required=True)
    p = sub.add_parser("verify", help="check a bundle like a device would")
    p.add_argument("bundle", type=Path)
    p.add_argument("--keyring", type=Path, required=True)
    p.add_argument("--compatible")
    repo = sub.add_parser("repo", help="TUF repository administration").add_subparsers(dest="repo_cmd", required=True)
    p = repo.add_parser("init", help="create role keys and the version-1 metadata")
    _repo_args(p)
    p.add_argument("--root-threshold", type=int, default=1)
    p.add_argument("--root-keys", type=int)
    p = sub.add_parser("publish", help="verify a bundle and release it to a ring")
    _repo_args(p)
    p.add_argument("bundle", type=Path)
    p.add_argument("--ring", default="canary", choices=("canary", "pilot", "fleet"))
    p.add_argument("--keyring", type=Path, required=True)
    p = sub.add_parser("promote", help="move a version one ring further (canary -> pilot -> fleet)")
    _repo_args(p)
    p.add_argument("version")
    p.add_argument("--compatible", required=True)
    p.add_argument("--to", required=True, choices=("pilot", "fleet"))
    p = sub.add_parser("halt", help="withdraw a ring's current version (back to the previous one, or none)")
    _repo_args(p)
    p.add_argument("--ring", required=True, choices=("canary", "pilot", "fleet"))
    p.add_argument("--compatible", required=True)
    p = sub.add_parser("status", help="ring versions and metadata expiry")
    _repo_args(p)
    p = sub.add_parser("refresh", aliases=["timestamp"],
                       help="scheduled job: re-sign near-expiry roles whose keys are here, new snapshot and timestamp")
    _repo_args(p)
    p = sub.add_parser("resign", help="re-sign roles with a fresh expiry (default: targets, bundles and the rings)")
    _repo_args(p)
    p.add_argument("roles", nargs="*", metavar="ROLE",
                   help="root, targets, snapshot, timestamp, bundles, canary, pilot, fleet")
    p = sub.add_parser("rotate-key", help="replace one role's key")
    _repo_args(p)
    p.add_argument("role")
    return ap


def _open_repo(args, ap: argparse.ArgumentParser):
    from .repo import FleetRepo

    if args.repo is None or args.keys is None:
        ap.error("--repo and --keys (or $ENDCAP_OTA_REPO/$ENDCAP_OTA_KEYS) are required")
    return FleetRepo.open(args.repo, args.keys, lock_timeout_s=args.lock_wait, on_lock_wait=_say_waiting)


def _status_lines(st, now: dt.datetime) -> list[str]:
    lines = ["ring     compatible                 version"]
    for ring, per in st.rings.items():
        for comp, ver in sorted(per.items()):
            lines.append(f"{ring:<8} {comp:<26} {ver or '-'}")
    lines.append("")
    lines.append("role       version  expires               days-left  state")
    for r in st.roles:
        lines.append(f"{r.role:<10} {r.version:>7}  {r.expires:%Y-%m-%dT%H:%M:%SZ}  {r.days_left:>9.2f}  {r.state}")
    return lines


def run(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    out = sys.stdout
    if args.cmd == "pki":
        from . import pki

        if args.pki_cmd == "init":
            made = pki.create_pki(args.dir, org=args.org, days=args.days)
            print(f"PKI in {args.dir}; devices trust {made.keyring}; move {made.root_key} offline", file=out)
        else:
            p = pki.load_pki(args.pki)
            cert, key = pki.issue_signer(p, args.out_dir or args.pki, name=args.name, days=args.days)
            print(f"signer {cert} {key}", file=out)
    elif args.cmd == "bundle":
        from .bundle import build_bundle
        from .pki import load_pki

        p = load_pki(args.pki)
        cert = key = None
        if args.signer:
            cert, key = args.pki / f"{args.signer}.cert.pem", args.pki / f"{args.signer}.key.pem"
        build_bundle(args.rootfs, args.out, version=args.version, compatible=args.compatible, pki=p, signer_cert=cert,
                     signer_key=key, fmt=args.format, security_epoch=args.security_epoch, allow_plain=args.allow_plain)
        print(f"{args.out}: {args.format} bundle {args.compatible} {args.version}", file=out)
    elif args.cmd == "verify":
        from .verify import verify_bundle

        i = verify_bundle(args.bundle, args.keyring, compatible=args.compatible)
        print(f"{args.bundle}: OK {i.compatible} {i.version} format={i.fmt} security-epoch={i.security_epoch} "
              f"size={i.size} sha256={i.sha256}", file=out)
    elif args.cmd == "repo":
        from .repo import FleetRepo

        if args.repo is None or args.keys is None:
            ap.error("--repo and --keys (or $ENDCAP_OTA_REPO/$ENDCAP_OTA_KEYS) are required")
        FleetRepo.create(args.repo, args.keys, root_threshold=args.root_threshold, root_keys=args.root_keys,
                         lock_timeout_s=args.lock_wait, on_lock_wait=_say_waiting)
        print(f"TUF repository in {args.repo}; devices bootstrap from {args.repo}/metadata/1.root.json", file=out)
    elif args.cmd == "publish":
        version = _open_repo(args, ap).publish(args.bundle, args.ring, keyring=args.keyring)
        print(f"published {version} to {args.ring}", file=out)
    elif args.cmd == "promote":
        _open_repo(args, ap).promote(args.version, args.compatible, args.to)
        print(f"promoted {args.version} ({args.compatible}) to {args.to}", file=out)
    elif args.cmd == "halt":
        now_at = _open_repo(args, ap).halt(args.ring, args.compatible)
        print(f"halted {args.ring} ({args.compatible}); it now points to {now_at or 'nothing'}", file=out)
    elif args.cmd == "status":
        now = dt.datetime.now(dt.timezone.utc)
        st = _open_repo(args, ap).status(now)
        print("\n".join(_status_lines(st, now)), file=out)
        return 1 if any(r.state == "expired" for r in st.roles) else 0
    elif args.cmd in ("refresh", "timestamp"):
        repo = _open_repo(args, ap)
        done = repo.refresh()
        print(f"timestamp version {done.timestamp_version}; re-signed: "
              f"{', '.join(f'{r} v{repo.md[r].signed.version}' for r in done.resigned) or 'nothing due'}", file=out)
        if done.needs_keys:
            roles = " ".join(done.needs_keys)
            print(f"endcap-ota: {roles}: near expiry, but their keys are not in {args.keys}; run 'endcap-ota resign "
                  f"{roles}' where the keys are [needs-keys]", file=sys.stderr)
            return 1
    elif args.cmd == "resign":
        repo = _open_repo(args, ap)
        versions = repo.resign(args.roles or None)
        for role, version in versions.items():
            print(f"{role:<10} v{version:<6} expires {repo.md[role].signed.expires:%Y-%m-%dT%H:%M:%SZ}", file=out)
    elif args.cmd == "rotate-key":
        keyid = _open_repo(args, ap).rotate_key(args.role)
        print(f"{args.role}: new key {keyid}", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except OtaError as e:
        print(f"endcap-ota: {e} [{e.code}]", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"endcap-ota: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
