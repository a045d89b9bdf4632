"""The pynng bus: pub/sub for superseding state, req/rep for what must arrive.

Wire format: ``topic + b"\\0" + msgpack(Envelope)``. Subscribers subscribe to ``topic + b"\\0"``
because NNG matches subscriptions by prefix (``pos.stock`` must not match ``pos.stockx``).
Every send and receive has a timeout; pynng's exceptions are translated to ``BusError`` here.
"""
from __future__ import annotations

import itertools
import logging
import os
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

    def serve_one(self) -> bool:
        """Wait up to the receive timeout for one request and answer it. True if one was answered."""
        try:
            data = self._sock.recv()
        except pynng.Timeout:
            return False
        except pynng.NNGException as e:
            raise BusError(f"rpc receive: {e}") from e
        reply_id, reply = self._dispatch(data)
        try:
            self._sock.send(self.codec.encode(reply, msg_id=reply_id))
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

    def close(self) -> None:
        self._sock.close()


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
