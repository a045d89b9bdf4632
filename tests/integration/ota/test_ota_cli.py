"""``endcap-ota`` end to end as a NOC operator runs it (real rauc, real files), including its error lines."""
from __future__ import annotations

import subprocess
import sys

from tests.fixtures.ota import COMPATIBLE, make_rootfs


def ota(*args):
    return subprocess.run([sys.executable, "-m", "endcap_ota.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_operator_flow(tmp_path):
    pki, repo, keys = tmp_path / "pki", tmp_path / "repo", tmp_path / "keys"
    r = ota("pki", "init", pki)
    assert r.returncode == 0, r.stderr
    r = ota("pki", "issue-signer", "--pki", pki, "--name", "ci-signer")
    assert r.returncode == 0 and (pki / "ci-signer.cert.pem").exists()
    rootfs = make_rootfs(tmp_path)
    b = tmp_path / "out" / "b.raucb"
    r = ota("bundle", rootfs, "--version", "1.2.3", "--compatible", COMPATIBLE, "--pki", pki, "--signer", "ci-signer",
            "--format", "plain", "--allow-plain", "--security-epoch", "2", "-o", b)
    assert r.returncode == 0, r.stderr
    r = ota("verify", b, "--keyring", pki / "keyring.pem", "--compatible", COMPATIBLE)
    assert r.returncode == 0 and "OK" in r.stdout and "security-epoch=2" in r.stdout and "format=plain" in r.stdout
    assert ota("repo", "init", "--repo", repo, "--keys", keys).returncode == 0
    common = ("--repo", repo, "--keys", keys)
    r = ota("publish", b, "--keyring", pki / "keyring.pem", *common)
    assert r.returncode == 0 and "1.2.3" in r.stdout, r.stderr
    assert ota("promote", "1.2.3", "--compatible", COMPATIBLE, "--to", "pilot", *common).returncode == 0
    assert ota("timestamp", *common).returncode == 0
    assert ota("rotate-key", "timestamp", *common).returncode == 0
    r = ota("status", *common)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert f"pilot    {COMPATIBLE:<26} 1.2.3" in lines and f"fleet    {COMPATIBLE:<26} -" in lines
    assert any(line.startswith("timestamp") and line.endswith("ok") for line in lines)
    r = ota("halt", "--ring", "pilot", "--compatible", COMPATIBLE, *common)
    assert r.returncode == 0 and "nothing" in r.stdout


def test_errors_are_one_line_and_exit_1(tmp_path):
    pki = tmp_path / "pki"
    assert ota("pki", "init", pki).returncode == 0
    rootfs = make_rootfs(tmp_path)
    r = ota("bundle", rootfs, "--version", "1.2", "--compatible", COMPATIBLE, "--pki", pki, "-o", tmp_path / "x.raucb")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "'1.2'" in r.stderr
    r = ota("bundle", rootfs, "--version", "1.2.0", "--compatible", COMPATIBLE, "--pki", pki, "--format", "plain",
            "-o", tmp_path / "x.raucb")
    assert r.returncode == 1 and "[format]" in r.stderr
    junk = tmp_path / "junk.raucb"
    junk.write_bytes(b"junk" * 100)
    r = ota("verify", junk, "--keyring", pki / "keyring.pem")
    assert r.returncode == 1 and str(junk) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = ota("status", "--repo", tmp_path / "none", "--keys", tmp_path / "nokeys")
    assert r.returncode == 1 and "nokeys" in r.stderr
    r = ota("promote", "1.0.0", "--compatible", COMPATIBLE, "--to", "canary", "--repo", "r", "--keys", "k")
    assert r.returncode == 2  # argparse: bad usage
    assert ota("pki", "init", pki).returncode == 1  # never overwrites a PKI


def test_refresh_and_resign_commands(tmp_path):
    import datetime as dt
    import shutil

    from endcap_ota.repo import FleetRepo

    repo, keys, online = tmp_path / "repo", tmp_path / "keys", tmp_path / "online"
    aged = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=25)  # the 30-day roles have 5 days left
    FleetRepo.create(repo, keys, clock=lambda: aged)
    online.mkdir()
    shutil.copy(keys / "repo.json", online / "repo.json")
    for role in ("snapshot", "timestamp"):
        shutil.copytree(keys / role, online / role)

    r = ota("status", "--repo", repo, "--keys", online)
    assert r.returncode == 1 and "near-expiry" in r.stdout and "expired" in r.stdout
    r = ota("refresh", "--repo", repo, "--keys", online)  # the online host's scheduled job
    assert r.returncode == 1, r.stderr
    assert "re-signed: snapshot v2" in r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "targets bundles canary pilot fleet: near expiry" in err[0] and "[needs-keys]" in err[0]

    r = ota("resign", "bogus", "--repo", repo, "--keys", keys)
    assert r.returncode == 1 and "'bogus'" in r.stderr and "[input]" in r.stderr
    r = ota("resign", "canary", "--repo", repo, "--keys", online)
    assert r.returncode == 1 and "[keys]" in r.stderr
    r = ota("resign", "canary", "pilot", "--repo", repo, "--keys", keys)
    assert r.returncode == 0, r.stderr
    assert [line.split()[:2] for line in r.stdout.splitlines()] == [
        ["snapshot", "v3"], ["timestamp", "v3"], ["canary", "v2"], ["pilot", "v2"]]
    r = ota("timestamp", "--repo", repo, "--keys", keys)  # the old name runs the same job
    assert r.returncode == 0, r.stderr
    assert "re-signed: targets v2, snapshot v4, bundles v2, fleet v2" in r.stdout
    r = ota("refresh", "--repo", repo, "--keys", online)
    assert r.returncode == 0 and "re-signed: nothing due" in r.stdout and r.stderr == ""
    r = ota("status", "--repo", repo, "--keys", online)
    assert r.returncode == 0 and "near-expiry" not in r.stdout
