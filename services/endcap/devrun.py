"""``endcap run``: the whole gateway on a dev host, with a simulated store (never used on a device).

Starts the store simulator, then every service of ``gateway.SERVICES`` as a child process with
``NOTIFY_SOCKET`` (readiness is the service's own READY=1), prints where to look, then shows what
flows on the bus until Ctrl-C or ``--duration``, and stops everything in reverse order.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from .core.watch import change_key, describe
from .core.atomic import atomic_write
from .core.bus import Subscriber
from .core.messages import TOPICS
from .core.errors import BusTimeout, EndcapError
from .core.paths import Paths
from .gateway import SERVICES
from .launcher import ServiceProcess


MODEL_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "endcap" / "models"
"""Where the dev offers model is cached: the checkout's .cache (ignored by git), next to the camera clips."""


def install_dev_model(paths: Paths, trust) -> None:
    """Train (once, cached), sign with the throwaway dev signer, and install through the trust service:
    the same path a NOC-signed model takes on a store's gateway."""
    from endcap_models import devmodel

    from .core import messages as m
    from .core.bus import RpcClient

    package = devmodel.ensure(MODEL_CACHE)
    signed = devmodel.signed_copy(package, paths.root / "dev-model", trust.key_path, trust.chain_path)
    with RpcClient(paths.rpc_address("trust"), "run", timeout_ms=60_000) as rpc:
        installed = rpc.call("install", m.InstallRequest(str(signed)), m.Installed)
    print(f"model     {installed.name} {installed.version} (epoch {installed.security_epoch}) verified by the TPM and active")


def dev_config(paths: Paths) -> str:
    from .sim.clips import build

    template = resources.files("endcap").joinpath("defaults/dev.toml").read_text(encoding="utf-8")
    print("preparing the simulated store camera (built once, then cached) ...", flush=True)
    tcti = f"swtpm:path={paths.state_dir / 'swtpm' / 's'}"  # where sim.devtrust's swtpm listens
    return (template.replace("{state}", str(paths.state_dir)).replace("{clip}", str(build().video))
            .replace("{tcti}", tcti))


def run_gateway(root: str | None, speed: float, duration_s: float | None, faults: str) -> int:
    root_dir = Path(root) if root else Path(tempfile.mkdtemp(prefix="endcap-"))
    paths = Paths.under(root_dir)
    paths.ensure()
    logs = paths.root / "log"
    logs.mkdir(exist_ok=True)
    if not paths.config_file.exists():
        atomic_write(paths.config_file, dev_config(paths).encode())
    sim_db = paths.state_dir / "sim" / "pos.db"
    sim_db.parent.mkdir(parents=True, exist_ok=True)
    if sim_db.exists():
        # A reused root: the simulated store restarts from its first basket, so the edge state that
        # mirrored the previous replay is set aside rather than mixed with the new one.
        old = paths.service_state("pos")
        if old.exists():
            old.rename(old.with_name(f"pos.previous-{int(time.time())}"))
        print(f"reusing {paths.root}: simulated store restarted; previous pos state kept beside it")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    children: list[ServiceProcess] = []
    trust = screen = device = None
    try:
        from .sim import devota, devtrust

        trust = devtrust.prepare(paths)
        device = devota.prepare(paths.state_dir)
        sim = ServiceProcess.endcap("sim", "sim", "--source", f"sqlite://{sim_db}", "--speed", str(speed),
                                    "--faults", faults, "--reset", log_path=logs / "sim.log").start()
        children.append(sim)
        sim.wait_ready(120)
        for name in SERVICES:
            proc = ServiceProcess.endcap(name, "service", name, "--root", str(paths.root), log_path=logs / f"{name}.log").start()
            children.append(proc)
            proc.wait_ready(60)
        install_dev_model(paths, trust)
        screen = _start_screen(paths, logs)
        _banner(paths, logs, children)
        _show_bus(paths, stop, duration_s)
    except (RuntimeError, EndcapError) as e:
        print(f"endcap run: {e}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(children):
            code = proc.stop()
            print(f"stopped {proc.name} (exit {code})")
        if screen is not None:
            screen.terminate()
            print(f"stopped screen (exit {screen.wait(10)})")
        if device is not None:
            devota.stop(device)
            print("stopped rauc and its bus")
        if trust is not None:
            trust.stop()
            print("stopped swtpm")
    return 0


SCREEN_FLAGS = ["--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--disable-gpu", "--noerrdialogs", "--autoplay-policy=no-user-gesture-required"]


def _start_screen(paths: Paths, logs: Path) -> subprocess.Popen | None:
    """The shelf-edge screen: Chromium showing the display page, as the kiosk unit does on a gateway.

    With a desktop (DISPLAY or WAYLAND_DISPLAY) it opens an app window you can watch; without one it
    runs headless, so the page still plays, acknowledges and keeps signage healthy. None when the
    signage URL or Chromium is missing (the banner then just prints the URL).
    """
    url_file, exe = paths.run_dir / "signage.url", shutil.which("chromium") or shutil.which("chromium-browser")
    if not url_file.exists() or exe is None:
        return None
    url = f"{url_file.read_text().strip()}/display/endcap-dev"
    desktop = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    argv = [exe, *SCREEN_FLAGS, f"--user-data-dir={paths.root / 'screen-profile'}"]
    argv += [f"--app={url}"] if desktop else ["--headless=new", url]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    with open(logs / "screen.log", "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _banner(paths: Paths, logs: Path, children: list[ServiceProcess]) -> None:
    print("Endcap gateway running on this host (simulated store). Ctrl-C stops everything.")
    print(f"  root      {paths.root}")
    print(f"  config    {paths.config_file}")
    print(f"  logs      {logs}/<service>.log")
    print(f"  state     {paths.state_dir}")
    for p in children:
        print(f"  {p.name:<9} pid {p.pid}")
    print(f"  bus       endcap bus watch --root {paths.root}")
    url_file = paths.run_dir / "signage.url"
    if url_file.exists():
        base = url_file.read_text().strip()
        print(f"  screen    {base}/display/endcap-dev   (Chromium shows it; open it in your browser too)")
    maint_url, maint_screen = paths.run_dir / "maint.url", paths.run_dir / "maint-screen.txt"
    if maint_url.exists():
        print(f"  maint     {maint_url.read_text().strip()}   (self-signed TLS; setup code and fingerprint: {maint_screen})")
    sys.stdout.flush()


def _show_bus(paths: Paths, stop: threading.Event, duration_s: float | None) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    addresses = [paths.pub_address(s) for s in SERVICES]
    topics = list(TOPICS) + [f"{s}.health" for s in SERVICES]
    last_health: dict[str, tuple[bool, str]] = {}
    with Subscriber(addresses, topics, "run", recv_timeout_ms=200) as sub:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                msg = sub.recv()
            except BusTimeout:
                continue
            if msg.topic.endswith(".health") or msg.topic in ("trust.model", "updater.status"):  # changes, not heartbeats
                state = change_key(msg.topic, msg.body)
                if last_health.get(msg.topic) == state:
                    continue
                last_health[msg.topic] = state
            print(f"{time.strftime('%H:%M:%S')} {describe(msg.topic, msg.body)}", flush=True)
