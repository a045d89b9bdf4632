"""`python -m endcap_image build|bundle|qemu` (PYTHONPATH=image/debian): the Makefile's image targets."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def cmd_build(args) -> int:
    from . import build

    img = build.build(version=args.version, force=args.force)
    print(img.disk)
    return 0


def cmd_bundle(args) -> int:
    from endcap_ota.bundle import build_bundle

    from . import build

    img = build.build(version=args.version)
    out = Path(args.out or img.dir / f"endcap-dev-{args.version}.raucb")
    out.unlink(missing_ok=True)
    build_bundle(img.rootfs, out, version=args.version, compatible=img.info["compatible"], pki=build.ensure_pki(),
                 fmt="verity")
    print(out)
    return 0


def cmd_qemu(args) -> int:
    from . import build, qemu

    img = build.build(version=args.version)
    with tempfile.TemporaryDirectory(prefix="endcap-qemu-") as td:
        t = Path(td)
        tpm = qemu.GuestTpm(Path(args.tpm_state) if args.tpm_state else t / "tpm").start()
        try:
            spec = qemu.QemuSpec(disk=qemu.overlay_disk(img.disk, t / "disk.img"), vars=qemu.vars_copy(t / "vars.fd"),
                                 serial=t / "serial.log", qmp=t / "qmp.sock", tpm_sock=tpm.sock,
                                 forwards={args.signage_port: qemu.GUEST_PORTS["signage"],
                                           args.maint_port: qemu.GUEST_PORTS["maint"]},
                                 interactive=True, no_reboot=False)
            print(f"signage: http://127.0.0.1:{args.signage_port}/  maintenance: https://127.0.0.1:{args.maint_port}/"
                  "  (quit: Ctrl-A X)", file=sys.stderr)
            return subprocess.call(qemu.command(spec))
        finally:
            tpm.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="endcap_image")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the dev disk image (cached by content hash)")
    b.add_argument("--version", default="1.0.0")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=cmd_build)
    b = sub.add_parser("bundle", help="a verity RAUC bundle of the image's rootfs, signed with the dev PKI")
    b.add_argument("--version", default="1.0.0")
    b.add_argument("--out")
    b.set_defaults(func=cmd_bundle)
    b = sub.add_parser("qemu", help="boot the image interactively (serial console on this terminal)")
    b.add_argument("--version", default="1.0.0")
    b.add_argument("--signage-port", type=int, default=18470)
    b.add_argument("--maint-port", type=int, default=18443)
    b.add_argument("--tpm-state", help="keep the TPM's state here (default: fresh each run)")
    b.set_defaults(func=cmd_qemu)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
