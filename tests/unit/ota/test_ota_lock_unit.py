"""RepoLock in one process: re-entrant per object, exclusive between objects, bounded wait, PID recorded."""
from __future__ import annotations

import os

import pytest

from endcap_ota.errors import RepoError
from endcap_ota.lock import RepoLock, holder_pid


def test_reentrant_exclusive_and_bounded(tmp_path):
    path = tmp_path / "repo" / ".lock"
    waited = []
    a = RepoLock(path, timeout_s=0)
    b = RepoLock(path, timeout_s=0.05, on_wait=lambda p, pid: waited.append((p, pid)))
    with a:
        with a:  # nested: only counts
            assert a.held and holder_pid(path) == os.getpid()
        assert a.held
        with pytest.raises(RepoError) as ei:
            b.acquire()
        assert ei.value.code == "locked" and str(path) in str(ei.value) and f"PID {os.getpid()}" in str(ei.value)
        assert waited == [(path, os.getpid())] and not b.held
    assert not a.held and holder_pid(path) is None
    with b:
        assert holder_pid(path) == os.getpid()


def test_bad_timeout_and_pid_file_contents(tmp_path):
    with pytest.raises(RepoError) as ei:
        RepoLock(tmp_path / ".lock", timeout_s=-2)
    assert ei.value.code == "input" and "-2" in str(ei.value)
    f = tmp_path / "x"
    assert holder_pid(f) is None  # missing
    f.write_text("not a pid\n")
    assert holder_pid(f) is None
    f.write_text("123\n")
    assert holder_pid(f) == 123
