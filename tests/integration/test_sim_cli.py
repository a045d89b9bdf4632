"""``endcap sim`` (endcap.sim.cli.main): a replay end to end, Ctrl-C, and bad input as one clear line."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from endcap.sim import truth
from endcap.sim.cli import main
from endcap.sim.sourcedb import open_source

def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_replays_with_faults_and_prints_progress(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'pos.db'}"
    rc = main(["--source", url, "--speed", "inf", "--faults", "all", "--max-lines", "1500", "--seed", "7"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "store 367" in out and "sim: finished" in out and "duplicate=" in out
    src = open_source(url)
    assert len(truth.source_transactions(src)) > 100
    src.close()
    # a second run on the same file refuses, unless told to reset
    assert main(["--source", url, "--speed", "inf", "--max-lines", "100"]) == 2
    assert "--reset" in error_line(capsys)
    assert main(["--source", url, "--speed", "inf", "--max-lines", "100", "--reset"]) == 0


@pytest.mark.parametrize(
    "args, named",
    [
        (["--faults", "late,bogus"], "'bogus'"),
        (["--store", "99999"], "store 99999"),
        (["--store", "abc"], "--store"),
        (["--speed", "0"], "--speed 0"),
        (["--speed", "fast"], "--speed"),
        (["--max-lines", "-5"], "--max-lines -5"),
        (["--late-max-s", "0"], "--late-max-s"),
    ],
)
def test_bad_input_is_one_line_naming_it_exit_2(tmp_path, capsys, args, named):
    assert main(["--source", f"sqlite:///{tmp_path / 'x.db'}", *args]) == 2
    assert named in error_line(capsys)


@pytest.mark.parametrize(
    "url, named",
    [
        ("sqlite:///{tmp}/no/such/dir/pos.db", "no/such/dir/pos.db"),
        ("sqlite:///{tmp}/garbage.db", "garbage.db"),
        ("mysql://pos@localhost/ospos", "mysql://pos@localhost/ospos"),
        ("postgresql://pos:s3cret@127.0.0.1:1/ospos", "127.0.0.1:1"),
    ],
)
def test_unusable_source_is_one_line_naming_it_exit_2(tmp_path, capsys, url, named):
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    assert main(["--source", url.format(tmp=tmp_path), "--max-lines", "10"]) == 2
    line = error_line(capsys)
    assert named in line and "s3cret" not in line


def test_reports_ready_then_ctrl_c_stops_cleanly_with_exit_0(tmp_path):
    url = f"sqlite:///{tmp_path / 'pos.db'}"
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(60)
        proc = subprocess.Popen(  # through the `endcap` command's own dispatch
            [sys.executable, "-m", "endcap.cli", "sim", "--source", url, "--speed", "3600", "--faults", "all"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": notify_path},
        )
        try:
            assert notify.recv(4096).decode().startswith("READY=1")
            first = proc.stdout.readline()
            assert first.startswith("sim: store 367"), first
            progress = proc.stdout.readline()  # the replay is under way (progress is printed every second)
            assert progress.startswith("sim: "), progress
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "sim: stopped" in out and "Traceback" not in err
    src = open_source(url)
    assert truth.source_transactions(src)  # what was replayed before the stop is committed
    assert truth.source_stock(src)
    src.close()
