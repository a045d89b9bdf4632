"""The production server: TLS terminated in-process with the stdlib ``ssl`` module, HTTP by waitress.

Waitress has no TLS, so a small front end accepts TLS connections on the configured address, completes
the handshake (TLS 1.2+, with a deadline), and relays bytes to waitress listening on 127.0.0.1 at a
private port. Each relay records which loopback (address, port) stands for which client, and
``PeerMiddleware`` puts the real client address into ``REMOTE_ADDR``; a request arriving on waitress's
port by any other path (another loopback address included) is refused (403), so nobody on the box can
skip TLS and pose as another address.

The front end reads every request head itself (``gate``) before any of that request's body is relayed:
a body over 1 MiB (or of unknown length) is relayed only when ``authorize`` accepts the head (a live
session, its CSRF token, our origin: checked against the session store), and one over ``max_body`` never;
so nobody can make waitress spool a large body to disk without logging in. Heads two parsers could read
differently are refused. One thread per connection, at most ``max_connections`` at a time (more are
closed at once).
"""
from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
from pathlib import Path
from typing import Callable, Optional

import waitress

from .gate import MAX_HEAD, Head, HeadError, decide, parse_head, response

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0
LINGER_BYTES = 256 * 1024  # after refusing a request, this much of its body is read and dropped (then close)
LINGER_S = 1.0

# (status, message) to refuse a large request with, or None to relay it
Authorize = Callable[[Head], Optional[tuple[int, str]]]
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Content Too Large",
           431: "Request Header Fields Too Large"}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class PeerMiddleware:
    """Replaces waitress's loopback peer with the TLS client's address; refuses unknown peers."""

    def __init__(self, app: Callable, peers: dict[tuple[str, int], tuple[str, int]]) -> None:
        self.app, self.peers = app, peers

    def __call__(self, environ, start_response):
        try:
            peer = self.peers.get((str(environ.get("REMOTE_ADDR") or ""), int(environ.get("REMOTE_PORT") or 0)))
        except ValueError:
            peer = None
        if peer is None:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"use the TLS port\n"]
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = peer[0], str(peer[1])
        environ["wsgi.url_scheme"] = "https"
        return self.app(environ, start_response)


class TlsServer:
    def __init__(self, app: Callable, *, bind: str, port: int, cert: Path, key: Path, max_connections: int = 64,
                 max_body: int = 1 << 30, threads: int = 8, authorize: Optional[Authorize] = None) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(str(cert), str(key))
        self.peers: dict[tuple[str, int], tuple[str, int]] = {}
        self.max_body = max_body
        self.authorize: Authorize = authorize or (lambda _h: (401, "Not logged in: large requests need a session."))
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self.listener = socket.create_server((bind, port), family=socket.AF_INET6 if ":" in bind else socket.AF_INET,
                                             backlog=64)
        self.port = self.listener.getsockname()[1]
        self.wsgi = waitress.create_server(PeerMiddleware(app, self.peers), host="127.0.0.1", port=0, threads=threads,
                                           url_scheme="https", ident="endcap-maint", max_request_body_size=max_body,
                                           channel_timeout=IDLE_TIMEOUT_S)
        self.backend = ("127.0.0.1", self.wsgi.effective_port)
        self._threads: list[threading.Thread] = []

    def start(self) -> "TlsServer":
        for target, name in ((self.wsgi.run, "maint-waitress"), (self._accept_loop, "maint-tls")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        self._stop.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.wsgi.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.listener.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn, addr), name="maint-conn", daemon=True).start()

    def _serve(self, raw: socket.socket, addr) -> None:
        backend = None
        local = None
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                tls = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.debug("TLS handshake with %s failed: %s", addr[0], e)
                raw.close()
                return
            tls.settimeout(IDLE_TIMEOUT_S)
            backend = socket.create_connection(self.backend, timeout=IDLE_TIMEOUT_S, source_address=("127.0.0.1", 0))
            local = backend.getsockname()[:2]
            self.peers[local] = (addr[0], addr[1])
            try:
                self._relay(tls, backend)
            except Refused as r:
                log.info("refused a request from %s before its body: %s", addr[0], r.message)
                tls.sendall(response(r.status, REASONS.get(r.status, "Refused"), r.message))
                self._linger(tls)
        except (OSError, ssl.SSLError) as e:
            log.debug("connection from %s ended: %s", addr[0], e)
        finally:
            if local is not None:
                self.peers.pop(local, None)
            for s in (backend, raw):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            self._slots.release()

    def _linger(self, tls: ssl.SSLSocket) -> None:
        """Read and drop a little of a refused body so the client can read the answer, then give up."""
        tls.settimeout(LINGER_S)
        dropped = 0
        try:
            while dropped < LINGER_BYTES:
                data = tls.recv(65536)
                if not data:
                    return
                dropped += len(data)
        except (OSError, ssl.SSLError):
            return

    def _relay(self, tls: ssl.SSLSocket, backend: socket.socket) -> None:
        """Copy bytes both ways until either side closes; one thread touches the TLS object.

        Client bytes pass through ``_Gate``, which holds each request head until it is complete and
        checked. Raises Refused (nothing of that request was relayed)."""
        gate = _Gate(self.max_body, self.authorize)
        with selectors.DefaultSelector() as sel:
            sel.register(tls, selectors.EVENT_READ, "tls")
            sel.register(backend, selectors.EVENT_READ, "backend")
            while not self._stop.is_set():
                ready = [k.data for k, _ in sel.select(timeout=IDLE_TIMEOUT_S)]
                if not ready and not tls.pending():
                    return
                if "tls" in ready or tls.pending():
                    data = tls.recv(65536)
                    if not data:
                        return
                    backend.sendall(gate.feed(data))
                    while tls.pending():
                        backend.sendall(gate.feed(tls.recv(65536)))
                if "backend" in ready:
                    data = backend.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)


class _Gate:
    """Client→server bytes, request by request: what may be relayed now. Raises Refused."""

    def __init__(self, max_body: int, authorize: Authorize) -> None:
        self.max_body, self.authorize = max_body, authorize
        self.buf = b""
        self.body_left = 0
        self.passthrough = False  # after an authorised chunked body: the rest of the connection is relayed as is

    def feed(self, data: bytes) -> bytes:
        if self.passthrough:
            return data
        self.buf += data
        out = bytearray()
        while self.buf:
            if self.body_left:
                n = min(self.body_left, len(self.buf))
                out += self.buf[:n]
                self.buf, self.body_left = self.buf[n:], self.body_left - n
                continue
            while self.buf.startswith(b"\r\n"):  # empty lines between requests (RFC 9112 2.2)
                self.buf = self.buf[2:]
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise Refused(431, f"The request head is larger than {MAX_HEAD} bytes.")
                break
            if end > MAX_HEAD:
                raise Refused(431, f"The request head is larger than {MAX_HEAD} bytes.")
            try:
                head = parse_head(self.buf[:end])
            except HeadError as e:
                raise Refused(e.status, str(e)) from None
            verdict = decide(head, limit=self.max_body)
            if verdict == "too-large":
                raise Refused(413, f"The request body is larger than the limit of {self.max_body} bytes.")
            if verdict == "ask":
                why = self.authorize(head)
                if why is not None:
                    raise Refused(*why)
            out += self.buf[:end + 4]
            self.buf = self.buf[end + 4:]
            if head.chunked:
                out += self.buf
                self.buf, self.passthrough = b"", True
                break
            self.body_left = head.length or 0
        return bytes(out)
