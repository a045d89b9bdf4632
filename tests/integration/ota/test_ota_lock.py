"""Concurrent ``endcap-ota`` writers on one repository (real processes, real flock), read back by ngclient.

Ordering comes from the processes themselves: a holder prints ``held`` once it holds the lock, a waiting
CLI prints its ``waiting for the repository lock`` line on stderr; nothing sleeps.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tuf.ngclient import Updater

from endcap_ota.lock import LOCK_NAME, holder_pid
from endcap_ota.repo import FleetRepo
from tests.fixtures.ota import COMPATIBLE

OTHER = "endcap-other-x86_64"

# holds the repository lock (the FleetRepo way) until its stdin closes or it is killed
HOLDER = """
import sys
from endcap_ota.repo import FleetRepo
repo = FleetRepo.open(sys.argv[1], sys.argv[2], lock_timeout_s=30)
with repo.writing():
    print("held", flush=True)
    sys.stdin.read()
"""


def ota_popen(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "endcap_ota.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def ota(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "endcap_ota.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def start_holder(repo: FleetRepo) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(repo.repo_dir), str(repo.keys_dir)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line == "held\n", f"holder did not take the lock: {line!r}, rc={p.poll()}"
    return p


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def device_pointer(repo_dir: Path, url: str, tmp: Path, ring: str, compatible: str) -> dict | None:
    """What a device on ``ring`` sees for ``compatible``, through a fresh ngclient refresh from 1.root.json."""
    md = tmp / f"dev-{ring}-{compatible}" / "metadata"
    tgt = md.parent / "targets"
    md.mkdir(parents=True)
    tgt.mkdir()
    shutil.copy(repo_dir / "metadata" / "1.root.json", md / "root.json")
    up = Updater(str(md), f"{url}/metadata/", str(tgt), f"{url}/targets/", bootstrap=None)
    up.refresh()
    info = up.get_targetinfo(f"rings/{ring}/{compatible}.json")
    if info is None:
        return None
    return json.loads(Path(up.download_target(info)).read_bytes())


def test_two_writers_waiting_on_one_lock_both_land(fleet_repo, make_bundle, fleet_pki, static_http, tmp_path):
    repo = fleet_repo
    common = ("--repo", repo.repo_dir, "--keys", repo.keys_dir)
    keyring = fleet_pki.keyring
    first = make_bundle("1.0.0")
    other = make_bundle("2.0.0", compatible=OTHER)
    r = ota("publish", first, "--keyring", keyring, *common)
    assert r.returncode == 0, r.stderr

    holder = start_holder(repo)
    # both writers load the repository before the lock is free: each must re-read it once it gets the lock
    promote = ota_popen("promote", "1.0.0", "--compatible", COMPATIBLE, "--to", "pilot", *common)
    publish = ota_popen("publish", other, "--keyring", keyring, *common)
    lock_file = repo.repo_dir / LOCK_NAME
    for p in (promote, publish):
        line = p.stderr.readline()
        assert f"{lock_file}: waiting for the repository lock held by PID {holder.pid}" in line, line
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    rc, out, err = finish(promote)
    assert rc == 0 and "promoted 1.0.0" in out, err
    rc, out, err = finish(publish)
    assert rc == 0 and "published 2.0.0 to canary" in out, err

    srv = static_http(repo.repo_dir)
    assert device_pointer(repo.repo_dir, srv.url, tmp_path, "pilot", COMPATIBLE)["version"] == "1.0.0"
    assert device_pointer(repo.repo_dir, srv.url, tmp_path, "canary", COMPATIBLE)["version"] == "1.0.0"
    assert device_pointer(repo.repo_dir, srv.url, tmp_path, "canary", OTHER)["version"] == "2.0.0"
    now = FleetRepo.open(repo.repo_dir, repo.keys_dir)
    assert now.md["timestamp"].signed.version == 4  # init, publish, then one each: nothing overwritten
    assert now.md["snapshot"].signed.version == 4
    assert holder_pid(lock_file) is None  # a finished writer leaves no PID behind


def test_many_cli_writers_at_once_lose_nothing(fleet_repo, make_bundle, fleet_pki, static_http, tmp_path):
    repo = fleet_repo
    common = ("--repo", repo.repo_dir, "--keys", repo.keys_dir)
    bundles = {c: make_bundle("1.0.0", compatible=c) for c in (COMPATIBLE, OTHER, "endcap-third-x86_64")}
    procs = [ota_popen("publish", b, "--keyring", fleet_pki.keyring, *common) for b in bundles.values()]
    procs.append(ota_popen("refresh", *common))  # the scheduled job, running into the publishes
    for p in procs:
        rc, out, err = finish(p)
        assert rc == 0, err
    srv = static_http(repo.repo_dir)
    for c in bundles:
        assert device_pointer(repo.repo_dir, srv.url, tmp_path, "canary", c)["version"] == "1.0.0"
    assert FleetRepo.open(repo.repo_dir, repo.keys_dir).md["timestamp"].signed.version == 1 + len(procs)


def test_a_held_lock_gives_up_after_the_bounded_wait(fleet_repo):
    common = ("--repo", fleet_repo.repo_dir, "--keys", fleet_repo.keys_dir)
    holder = start_holder(fleet_repo)
    try:
        r = ota("halt", "--ring", "canary", "--compatible", COMPATIBLE, "--lock-wait", "0.3", *common)
        assert r.returncode == 1
        err = r.stderr.strip().splitlines()
        lock_file = fleet_repo.repo_dir / LOCK_NAME
        assert "waiting for the repository lock" in err[0] and str(lock_file) in err[0]
        assert err[-1].startswith(f"endcap-ota: {lock_file}: held by PID {holder.pid}; gave up after 0.3 s")
        assert err[-1].endswith("[locked]")
        # reading takes no lock
        r = ota("status", *common)
        assert r.returncode == 0 and "timestamp" in r.stdout and r.stderr == ""
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert FleetRepo.open(fleet_repo.repo_dir, fleet_repo.keys_dir).md["timestamp"].signed.version == 1


def test_a_killed_holder_leaves_no_lock(fleet_repo, make_bundle, fleet_pki):
    holder = start_holder(fleet_repo)
    lock_file = fleet_repo.repo_dir / LOCK_NAME
    assert holder_pid(lock_file) == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    assert holder_pid(lock_file) == holder.pid  # the file and its PID stay; the kernel dropped the flock
    b = make_bundle("1.0.0")
    r = ota("publish", b, "--keyring", fleet_pki.keyring, "--lock-wait", "0",
            "--repo", fleet_repo.repo_dir, "--keys", fleet_repo.keys_dir)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert FleetRepo.open(fleet_repo.repo_dir, fleet_repo.keys_dir).ring_version("canary", COMPATIBLE) == "1.0.0"


def test_concurrent_init_makes_one_repository(tmp_path):
    procs = [ota_popen("repo", "init", "--repo", tmp_path / "repo", "--keys", tmp_path / f"keys{i}") for i in range(2)]
    results = [finish(p) for p in procs]
    assert sorted(rc for rc, _, _ in results) == [0, 1], results
    err = next(e for rc, _, e in results if rc == 1)
    assert "already holds a TUF repository" in err and "[exists]" in err


def test_negative_lock_wait_is_refused(fleet_repo):
    r = ota("refresh", "--lock-wait", "-1", "--repo", fleet_repo.repo_dir, "--keys", fleet_repo.keys_dir)
    assert r.returncode == 1 and "lock timeout -1" in r.stderr and "[input]" in r.stderr
