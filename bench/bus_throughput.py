"""Bus throughput across processes: Endcap's Publisher → Subscriber versus raw pynng Pub0/Sub0.

What is measured: messages *received* per second at a subscriber process while a publisher process
sends as fast as it can for a fixed time window over ``ipc://`` in a temp dir. Ours sends real typed
messages (``pos.stock`` = ``StockChanged`` with 5 ``StockLevel``s) through ``endcap.core.bus`` and
receives them decoded into structs; the anchor sends pre-built bytes of exactly the same size through
bare pynng sockets and receives bytes. Pub/sub is lossy, so each run also records the loss fraction
(messages the subscriber never saw).

Method, and why:
- Both sides are fresh 'spawn' processes (like two services on the gateway); this process only
  orchestrates, so nothing it ran before (other benchmarks, their NNG threads) can interfere.
- Each side is pinned to its own CPU when there are two or more, before it opens a socket, so NNG's
  I/O threads share that CPU with their own Python thread. Unpinned on a 2-CPU host, a publisher
  spinning in Python starves the NNG threads of whichever side the scheduler picks, and the anchor
  swung 13–24 k msg/s between runs; pinned it stays within a few percent.
- Rate window: from the first to the last data message received, so neither start-up nor the drain
  timeout counts. A fixed *time* window gives both sides the same steady-state length even though
  our publisher, which encodes every message, sends fewer.
- Start-up handshake: the publisher sends probes (``bench.health``) until the subscriber has received
  one and set the ``ready`` Event, then starts the burst, so no data is lost to an unconnected pipe.
- Runs alternate anchor/ours (ABBA) to spread slow drift of the host over both sides.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from typing import Any

import pynng

from bench import common
from endcap.core import messages as m
from endcap.core.bus import SEP, Codec, Publisher, Subscriber
from endcap.core.errors import BusTimeout

NAME = "bus_throughput"
TOPIC = "pos.stock"
PROBE_TOPIC = "bench.health"  # any "<svc>.health" topic decodes as Health on our bus
WINDOW_S = 2.0  # how long the publisher sends per measurement
RUNS = 5
TARGET = "ratio >= 0.8"

CHUNK = 256  # messages between clock reads in the publisher's loop, so the clock costs nothing
PROBE_INTERVAL_S = 0.005
CONNECT_DEADLINE_S = 30.0  # spawn + imports + dial, on a slow CI box
LINGER_DEADLINE_S = 60.0
RECV_TIMEOUT_MS = 200  # how long silence after the publisher's "sent" means the queue is drained


class BenchError(RuntimeError):
    """The benchmark could not measure (a side died, never connected, nothing received)."""


def sample_body() -> m.StockChanged:
    """A realistic ``pos.stock`` body: five SKUs, one of them of unknown stock."""
    now = 1_732_700_000.0
    return m.StockChanged(levels=[
        m.StockLevel(sku="0001234567", qty=12.0, as_of=now),
        m.StockLevel(sku="0001234568", qty=0.0, as_of=now - 5),
        m.StockLevel(sku="0007654321", qty=3.5, as_of=now - 60),
        m.StockLevel(sku="0009990001", qty=None),
        m.StockLevel(sku="0000000042", qty=140.0, as_of=now - 3600),
    ])


def wire_message() -> bytes:
    """One complete wire message of ours (topic, separator, envelope): the anchor sends these bytes."""
    return TOPIC.encode() + SEP + Codec("bench").encode(sample_body())


def _pin(cpu: int | None) -> None:
    # Before the first socket: NNG starts its threads then, and they inherit this affinity.
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


# --- publisher (child process) -------------------------------------------------------------------

def _publisher_main(kind: str, address: str, window_s: float, cpu: int | None,
                    ready: Event, sent: Event, stop: Event, sent_count: Any) -> None:
    """Listen, probe until the subscriber is ready, send for ``window_s``, linger until ``stop``."""
    _pin(cpu)
    if kind == "ours":
        pub = Publisher(address, "bench")
        body, probe = sample_body(), m.Health("bench", True, "probe")
        publish = pub.publish

        def send_probe() -> None:
            publish(PROBE_TOPIC, probe)

        def send_chunk() -> None:
            for _ in range(CHUNK):
                publish(TOPIC, body)
        close = pub.close
    else:
        sock = pynng.Pub0(listen=address, send_timeout=100)
        data, probe_data = wire_message(), PROBE_TOPIC.encode() + SEP + b"probe"
        send = sock.send

        def send_probe() -> None:
            send(probe_data)

        def send_chunk() -> None:
            for _ in range(CHUNK):
                send(data)
        close = sock.close
    try:
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        # ready.wait is the pacing: it returns at once when the subscriber signals.
        while not ready.wait(PROBE_INTERVAL_S):
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind} publisher: no subscriber ready within {CONNECT_DEADLINE_S:.0f} s")
            send_probe()
        n, end = 0, time.monotonic() + window_s
        while time.monotonic() < end:
            send_chunk()
            n += CHUNK
        sent_count.value = n
        sent.set()
        # Closing at once could discard messages still queued in NNG and count them as loss.
        stop.wait(LINGER_DEADLINE_S)
    finally:
        close()


# --- subscriber (child process) ------------------------------------------------------------------

class _OursSub:
    def __init__(self, address: str) -> None:
        self.sub = Subscriber([address], [TOPIC, PROBE_TOPIC], "bench", recv_timeout_ms=RECV_TIMEOUT_MS)

    def recv_is_data(self) -> bool:
        """Receive one message; True for a data message, False for a probe. Raises BusTimeout."""
        return self.sub.recv().topic == TOPIC

    def rejected(self) -> int:
        return self.sub.rejected

    def close(self) -> None:
        self.sub.close()


class _RawSub:
    _prefix = TOPIC.encode() + SEP

    def __init__(self, address: str) -> None:
        self.sock = pynng.Sub0(recv_timeout=RECV_TIMEOUT_MS)
        self.sock.subscribe(TOPIC.encode() + SEP)
        self.sock.subscribe(PROBE_TOPIC.encode() + SEP)
        self.sock.dial(address, block=False)

    def recv_is_data(self) -> bool:
        try:
            return self.sock.recv().startswith(self._prefix)
        except pynng.Timeout as e:
            raise BusTimeout("raw recv timed out") from e

    def rejected(self) -> int:
        return 0

    def close(self) -> None:
        self.sock.close()


def _subscriber_main(kind: str, address: str, window_s: float, cpu: int | None,
                     ready: Event, sent: Event, results: Connection) -> None:
    """Dial, wait for a probe, signal ``ready``, receive until the publisher is done and drained."""
    _pin(cpu)
    sub = _OursSub(address) if kind == "ours" else _RawSub(address)
    try:
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        while True:
            try:
                sub.recv_is_data()
                break  # the pipe is up end to end: a probe (nothing else is sent yet) came through
            except BusTimeout:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{kind} subscriber: no probe within {CONNECT_DEADLINE_S:.0f} s") from None
        ready.set()
        recv_is_data, clock = sub.recv_is_data, time.perf_counter
        received, t_first, t_last = 0, 0.0, 0.0
        deadline = time.monotonic() + window_s + LINGER_DEADLINE_S
        while True:
            try:
                is_data = recv_is_data()
            except BusTimeout:
                # Silence after the publisher finished means its queue is drained: the rest was lost.
                if sent.is_set() or time.monotonic() > deadline:
                    break
                continue
            if is_data:  # stale probes still queued from the handshake are not counted
                t_last = clock()
                if received == 0:
                    t_first = t_last
                received += 1
        results.send({"received": received, "t_first": t_first, "t_last": t_last, "rejected": sub.rejected()})
    finally:
        sub.close()


# --- orchestration (this process) ----------------------------------------------------------------

def _cpus() -> tuple[int | None, int | None]:
    """(publisher CPU, subscriber CPU): two distinct allowed CPUs, or no pinning on a 1-CPU host."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    # The highest-numbered ones: CPU 0 usually takes more interrupts.
    return (allowed[-1], allowed[-2]) if len(allowed) >= 2 else (None, None)


def measure(kind: str, window_s: float = WINDOW_S) -> dict[str, float]:
    """One measurement of ``kind`` ('ours' or 'anchor'): received msg/s, sent, received, loss fraction."""
    ctx = mp.get_context("spawn")
    ready, sent, stop = ctx.Event(), ctx.Event(), ctx.Event()
    sent_count = ctx.Value("q", 0, lock=False)  # written once by the publisher before it sets `sent`
    results_r, results_w = ctx.Pipe(duplex=False)
    pub_cpu, sub_cpu = _cpus()
    tmp = tempfile.mkdtemp(prefix="endcap-bench-")
    address = f"ipc://{tmp}/bus.pub"
    sub = ctx.Process(target=_subscriber_main, name=f"bench-subscriber-{kind}", daemon=True,
                      args=(kind, address, window_s, sub_cpu, ready, sent, results_w))
    pub = ctx.Process(target=_publisher_main, name=f"bench-publisher-{kind}", daemon=True,
                      args=(kind, address, window_s, pub_cpu, ready, sent, stop, sent_count))
    procs = (sub, pub)
    try:
        for p in procs:
            p.start()
        results_w.close()  # ours is a copy; the subscriber holds the real write end
        budget = CONNECT_DEADLINE_S + window_s + LINGER_DEADLINE_S
        deadline = time.monotonic() + budget
        got = None
        while got is None and time.monotonic() < deadline:
            # Wakes on the result or on either side exiting (a crash must not wait out the deadline).
            wait([results_r, sub.sentinel, pub.sentinel], timeout=1.0)
            if results_r.poll():
                got = results_r.recv()
            elif any(p.exitcode is not None for p in procs):
                raise BenchError(f"{kind}: a side exited early (subscriber {sub.exitcode}, publisher {pub.exitcode})")
        if got is None:
            raise BenchError(f"{kind}: no result within {budget:.0f} s")
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
        results_r.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if pub.exitcode != 0 or sub.exitcode != 0:
        raise BenchError(f"{kind}: subscriber exited {sub.exitcode}, publisher exited {pub.exitcode}")
    if got["rejected"]:
        raise BenchError(f"{kind}: our subscriber rejected {got['rejected']} messages")
    n_sent, received = sent_count.value, got["received"]
    if received < 2 or got["t_last"] <= got["t_first"]:
        raise BenchError(f"{kind}: only {received} of {n_sent} messages received")
    return {"rate": (received - 1) / (got["t_last"] - got["t_first"]), "sent": n_sent, "received": received,
            "loss": 1 - received / n_sent}


def run(window_s: float = WINDOW_S, runs: int = RUNS) -> dict[str, Any]:
    per_run = []
    for i in range(runs):
        order = ("anchor", "ours") if i % 2 == 0 else ("ours", "anchor")
        got = {kind: measure(kind, window_s) for kind in order}
        per_run.append({
            "value": got["ours"]["rate"], "anchor": got["anchor"]["rate"],
            "loss": got["ours"]["loss"], "anchor_loss": got["anchor"]["loss"],
            "sent": got["ours"]["sent"], "anchor_sent": got["anchor"]["sent"],
        })
    pinned = "each side pinned to its own CPU" if _cpus()[0] is not None else "unpinned (1 CPU)"
    return common.make_result(
        name=NAME,
        metric=(f"cross-process pub/sub messages received per second at the subscriber "
                f"({TOPIC} StockChanged with 5 levels, {len(wire_message())} B on the wire, ipc://, "
                f"publisher sending as fast as it can for {window_s:g} s, {pinned}; loss per run in runs[])"),
        unit="msg/s",
        target=TARGET,
        anchor_name="raw pynng Pub0/Sub0, pre-built bytes of the same size, same run",
        runs=per_run,
    )
