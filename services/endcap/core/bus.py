"""The pynng bus: pub/sub for superseding state, req/rep for what must arrive.

Wire format: ``topic + b"\\0" + msgpack(Envelope)``. Subscribers subscribe to ``topic + b"\\0"``
because NNG matches subscriptions by prefix (``pos.stock`` must not match ``pos.stockx``).
Every send and receive has a timeout; pynng's exceptions are translated to ``BusError`` here.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import msgspec
import pynng

from . import messages as m
from .errors import BusError, BusTimeout, EndcapError, RemoteError, SchemaError

log = logging.getLogger(__name__)

SEP = b"\0"
# NNG keeps a small queue per subscriber and drops the oldest of a burst; a burst of zone events or a
# pos back-fill is bigger than the default 16, so both ends queue more (still lossy, by design).
QUEUE_MESSAGES = 1024
MAX_IPC_PATH = 107  # sun_path is 108 bytes including the terminating NUL


def _check_address(address: str) -> None:
    if address.startswith("ipc://") and len(address) - len("ipc://") > MAX_IPC_PATH:
        raise BusError(f"bus address {address!r}: unix socket path longer than {MAX_IPC_PATH} bytes; use a shorter --root")


class Codec:
    """Encodes bodies into envelopes and back; reuses msgspec encoders/decoders per type."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._enc = msgspec.msgpack.Encoder()
        self._env_dec = msgspec.msgpack.Decoder(m.Envelope)
        self._decoders: dict[type, msgspec.msgpack.Decoder] = {}
        self._ids = itertools.count(1)
        self._nonce = f"{os.getpid():x}{time.monotonic_ns() & 0xFFFF:04x}"

    def next_id(self) -> str:
        return f"{self.source}:{self._nonce}:{next(self._ids)}"

    def encode(self, body: Any, *, msg_id: str | None = None) -> bytes:
        env = m.Envelope(m.SCHEMA, msg_id or self.next_id(), time.time(), self.source, msgspec.Raw(self._enc.encode(body)))
        return self._enc.encode(env)

    def decode_envelope(self, data: bytes | memoryview) -> m.Envelope:
        try:
            env = self._env_dec.decode(data)
            m.check_schema(env.schema)
        except (msgspec.DecodeError, ValueError) as e:
            raise SchemaError(f"bad envelope: {e}") from e
        return env

    def decode_body(self, raw: msgspec.Raw, typ: type) -> Any:
        dec = self._decoders.get(typ)
        if dec is None:
            dec = self._decoders[typ] = msgspec.msgpack.Decoder(typ)
        try:
            return dec.decode(raw)
        except msgspec.DecodeError as e:
            raise SchemaError(f"bad {typ.__name__} body: {e}") from e


@dataclass(frozen=True)
class Message:
    topic: str
    envelope: m.Envelope
    body: Any


class Publisher:
    """Listens on ``address`` and publishes typed bodies. Sending never blocks for long (lossy)."""

    def __init__(self, address: str, source: str, *, send_timeout_ms: int = 100) -> None:
        _check_address(address)
        self.codec = Codec(source)
        try:
            self._sock = pynng.Pub0(listen=address, send_timeout=send_timeout_ms, send_buffer_size=QUEUE_MESSAGES)
        except pynng.NNGException as e:
            raise BusError(f"cannot listen on {address}: {e}") from e

    def publish(self, topic: str, body: Any) -> None:
        data = topic.encode() + SEP + self.codec.encode(body)
        try:
            self._sock.send(data)
        except pynng.Timeout as e:
            raise BusTimeout(f"publish {topic}: send timed out") from e
        except pynng.NNGException as e:
            raise BusError(f"publish {topic}: {e}") from e

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """Dials one or more publishers (in the background, so start order does not matter)."""

    def __init__(self, addresses: Iterable[str], topics: Iterable[str], source: str, *, recv_timeout_ms: int = 1000) -> None:
        self.codec = Codec(source)
        self.rejected = 0
        self._timeout = recv_timeout_ms
        self._sock = pynng.Sub0(recv_timeout=recv_timeout_ms, recv_buffer_size=QUEUE_MESSAGES)
        for t in topics:
            self._sock.subscribe(t.encode() + SEP)
        for a in addresses:
            _check_address(a)
            self._sock.dial(a, block=False)

    def recv(self) -> Message:
        """The next well-formed message. Malformed ones and foreign schema majors are logged and skipped.

        Raises:
            BusTimeout: nothing arrived within the receive timeout.
        """
        while True:
            try:
                data = self._sock.recv()
            except pynng.Timeout as e:
                raise BusTimeout(f"no message within {self._timeout} ms") from e
            except pynng.NNGException as e:
                raise BusError(f"receive: {e}") from e
            topic_b, sep, payload = data.partition(SEP)
            topic = topic_b.decode(errors="replace")
            try:
                if not sep:
                    raise SchemaError("no topic separator")
                env = self.codec.decode_envelope(payload)
                body = self.codec.decode_body(env.body, m.body_type(topic))
            except (SchemaError, KeyError) as e:
                self.rejected += 1
                log.warning("rejected message on %r: %s", topic, e)
                continue
            return Message(topic, env, body)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Handler = Callable[[Any], Any]


class RpcServer:
    """Answers requests on ``address``. Handlers map a method name to (params type, function).

    A handler raising ``EndcapError`` produces an error reply with its code; anything else is a bug
    and propagates (the runner logs it and exits non-zero, systemd restarts the service).
    """

    def __init__(self, address: str, source: str, handlers: dict[str, tuple[type, Handler]], *, recv_timeout_ms: int = 200, send_timeout_ms: int = 1000) -> None:
        _check_address(address)
        self.codec = Codec(source)
        self._handlers = handlers
        self._req_dec = msgspec.msgpack.Decoder(m.Request)
        try:
            self._sock = pynng.Rep0(listen=address, recv_timeout=recv_timeout_ms, send_timeout=send_timeout_ms)
        except pynng.NNGException as e:
            raise BusError(f"cannot listen on {address}: {e}") from e

    def serve_one(self, via: "pynng.Context | None" = None) -> bool:
        """Wait up to the receive timeout for one request and answer it. True if one was answered.

        ``via``: a context of this server (``new_context``), so several threads can answer at once.
        """
        sock = self._sock if via is None else via
        try:
            data = sock.recv()
        except pynng.Timeout:
            return False
        except pynng.NNGException as e:
            raise BusError(f"rpc receive: {e}") from e
        reply_id, reply = self._dispatch(data)
        try:
            sock.send(self.codec.encode(reply, msg_id=reply_id))
        except pynng.NNGException as e:
            log.warning("rpc reply %s not sent: %s", reply_id, e)
        return True

    def _dispatch(self, data: bytes) -> tuple[str | None, m.Reply]:
        try:
            env = self.codec.decode_envelope(data)
            req = self._req_dec.decode(env.body)
        except (SchemaError, msgspec.DecodeError) as e:
            return None, m.Reply(False, error=m.ErrorInfo("schema", str(e)))
        entry = self._handlers.get(req.method)
        if entry is None:
            return env.id, m.Reply(False, error=m.ErrorInfo("unknown_method", f"no method {req.method!r}"))
        params_type, fn = entry
        try:
            params = self.codec.decode_body(req.params, params_type)
            result = fn(params)
        except EndcapError as e:
            return env.id, m.Reply(False, error=m.ErrorInfo(e.code, e.message))
        return env.id, m.Reply(True, result=msgspec.Raw(msgspec.msgpack.encode(result)))

    def new_context(self) -> "pynng.Context":
        """A context of this server's socket: one more request answered at a time (timeouts inherited)."""
        return self._sock.new_context()

    def close(self) -> None:
        self._sock.close()


def contained(method: str, fn: Handler) -> Handler:
    """``fn`` with any unexpected exception logged (with its traceback) and answered as an error reply
    (code ``internal``) instead of ending the RPC thread: for handlers, like the maintenance page's, whose
    bugs must not take a production service's queries down with them."""

    def call(params: Any) -> Any:
        try:
            return fn(params)
        except EndcapError:
            raise
        except Exception as e:
            log.exception("rpc %s failed", method)
            raise EndcapError(f"{method}: internal error ({type(e).__name__}: {e})"[:500], code="internal") from e

    return call


class RpcThread:
    """An ``RpcServer`` answered by ``workers`` threads of its own until ``stop``, for services whose main
    thread does other work. With ``workers`` > 1 each thread answers on its own context, so a slow handler
    holds up only its own thread. ``server`` is already listening (a bind error raises in the caller).

    The main loop calls ``check()`` each turn: once a worker has died while ``stop`` is not set it raises
    ``BusError`` naming the cause, the service exits non-zero and systemd restarts it (a service must not
    run on with its queries unanswered). ``thread_exit`` runs in each worker thread as it ends (e.g. to
    close a per-thread database connection).
    """

    def __init__(self, name: str, server: RpcServer, stop: threading.Event, *, workers: int = 1,
                 thread_exit: Callable[[], None] | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers}: must be at least 1")
        self.name, self.server, self._stop, self._exit = name, server, stop, thread_exit
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(workers > 1,), name=f"{name}-{i}" if workers > 1 else name,
                                          daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _run(self, own_context: bool) -> None:
        via = self.server.new_context() if own_context else None
        try:
            while not self._stop.is_set():
                self.server.serve_one(via)
        except BaseException as e:
            with self._lock:
                if self.failure is None:
                    self.failure = e
            log.error("%s: RPC thread %s stopped: %r", self.name, threading.current_thread().name, e, exc_info=e)
        finally:
            if via is not None:
                try:
                    via.close()
                except pynng.NNGException:
                    pass
            if self._exit is not None:
                self._exit()

    def alive(self) -> bool:
        """Every worker thread still runs."""
        return all(t.is_alive() for t in self._threads)

    def check(self) -> None:
        """Raise ``BusError`` if a worker died while the service is not stopping."""
        if self._stop.is_set() or self.alive():
            return
        cause = self.failure
        why = f"{type(cause).__name__}: {cause}" if cause is not None else "unknown reason"
        raise BusError(f"{self.name}: RPC thread stopped ({why}); queries are no longer answered")

    def close(self, timeout_s: float = 2.0) -> None:
        """Join the workers (they end within the receive timeout once ``stop`` is set), then close the server."""
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.server.close()


class RpcClient:
    """Calls one service. Every call has a timeout; an error reply raises ``RemoteError``."""

    def __init__(self, address: str, source: str, *, timeout_ms: int = 2000) -> None:
        _check_address(address)
        self.codec = Codec(source)
        self._sock = pynng.Req0(recv_timeout=timeout_ms, send_timeout=timeout_ms)
        self._sock.dial(address, block=False)
        self._timeout = timeout_ms

    def call(self, method: str, params: Any, result_type: type) -> Any:
        req = m.Request(method, msgspec.Raw(msgspec.msgpack.encode(params)))
        try:
            self._sock.send(self.codec.encode(req))
            data = self._sock.recv()
        except pynng.Timeout as e:
            raise BusTimeout(f"rpc {method}: no reply within {self._timeout} ms") from e
        except pynng.NNGException as e:
            raise BusError(f"rpc {method}: {e}") from e
        env = self.codec.decode_envelope(data)
        reply = self.codec.decode_body(env.body, m.Reply)
        if not reply.ok:
            err = reply.error or m.ErrorInfo("error", "error reply without detail")
            raise RemoteError(f"{method}: {err.message}", code=err.code)
        return self.codec.decode_body(reply.result, result_type)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "RpcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
