"""``core.bus.RpcThread`` and ``contained`` over real pynng sockets: a slow handler holds up only its own
worker, a dead worker is reported by ``check()``, and a contained handler's bug is an error reply."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time

import pytest

from endcap.core import messages as m
from endcap.core.bus import RpcClient, RpcServer, RpcThread, contained
from endcap.core.errors import BusError, RemoteError


@pytest.fixture
def addr():
    d = tempfile.mkdtemp(prefix="ecr-")
    yield f"ipc://{d}/t.rpc"
    shutil.rmtree(d, ignore_errors=True)


def _levels(q: m.StockQuery) -> m.StockReply:
    return m.StockReply([m.StockLevel(s, 1.0) for s in q.skus])


def test_a_slow_handler_holds_up_only_its_own_worker(addr):
    entered, release = threading.Event(), threading.Event()
    exits: list[str] = []

    def slow(_q: m.Empty) -> m.Empty:
        entered.set()
        release.wait(10)
        return m.Empty()

    stop = threading.Event()
    rpc = RpcThread("t", RpcServer(addr, "srv", {"slow": (m.Empty, slow), "stock": (m.StockQuery, _levels)},
                                   recv_timeout_ms=50), stop, workers=2,
                    thread_exit=lambda: exits.append(threading.current_thread().name))
    result: list = []
    try:
        with RpcClient(addr, "a", timeout_ms=10_000) as a, RpcClient(addr, "b", timeout_ms=5000) as b:
            caller = threading.Thread(target=lambda: result.append(a.call("slow", m.Empty(), m.Empty)))
            caller.start()
            assert entered.wait(5)
            t0 = time.perf_counter()
            for _ in range(20):
                assert b.call("stock", m.StockQuery(["x"]), m.StockReply).levels[0].sku == "x"
            assert time.perf_counter() - t0 < 1.0  # 20 answers while the other worker is busy
            rpc.check()
            release.set()
            caller.join(10)
            assert result == [m.Empty()]
    finally:
        release.set()
        stop.set()
        rpc.close()
    assert sorted(exits) == ["t-0", "t-1"]  # thread_exit ran in each worker


def test_one_worker_serialises_and_a_dead_worker_is_reported(addr):
    def bug(_q: m.Empty) -> m.Empty:
        raise KeyError("boom")

    stop = threading.Event()
    rpc = RpcThread("svc-rpc", RpcServer(addr, "srv", {"bug": (m.Empty, bug)}, recv_timeout_ms=50), stop)
    try:
        rpc.check()
        with RpcClient(addr, "a", timeout_ms=300) as a:
            with pytest.raises(BusError):  # the thread died mid-request: no reply
                a.call("bug", m.Empty(), m.Empty)
        deadline = time.monotonic() + 5
        while rpc.alive() and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert not rpc.alive()
        with pytest.raises(BusError) as e:
            rpc.check()
        assert "svc-rpc: RPC thread stopped (KeyError: 'boom')" in str(e.value) and e.value.code == "bus"
        stop.set()
        rpc.check()  # stopping: not an error
    finally:
        stop.set()
        rpc.close()


def test_a_contained_handler_bug_is_an_error_reply_and_the_thread_lives_on(addr):
    def bug(_q: m.Empty) -> m.Empty:
        raise ZeroDivisionError("division by zero")

    stop = threading.Event()
    rpc = RpcThread("t", RpcServer(addr, "srv", {"bug": (m.Empty, contained("bug", bug)),
                                                 "stock": (m.StockQuery, _levels)}, recv_timeout_ms=50), stop)
    try:
        with RpcClient(addr, "a", timeout_ms=2000) as a:
            with pytest.raises(RemoteError) as e:
                a.call("bug", m.Empty(), m.Empty)
            assert e.value.code == "internal" and "bug: internal error (ZeroDivisionError: division by zero)" in str(e.value)
            assert a.call("stock", m.StockQuery(["y"]), m.StockReply).levels[0].sku == "y"
        assert rpc.alive()
        rpc.check()
    finally:
        stop.set()
        rpc.close()


def test_workers_must_be_positive(addr):
    server = RpcServer(addr, "srv", {})
    try:
        with pytest.raises(ValueError, match="workers 0"):
            RpcThread("t", server, threading.Event(), workers=0)
    finally:
        server.close()
