"""The production server: TLS terminated in-process with the stdlib ``ssl`` module, HTTP by waitress.

Waitress has no TLS, so a small front end accepts TLS connections on the configured address, completes
the handshake (TLS 1.2+, with a deadline), and relays bytes to waitress listening on 127.0.0.1 at a
private port. Each relay records which loopback port stands for which client, and ``PeerMiddleware``
puts the real client address into ``REMOTE_ADDR``; a request arriving on waitress's port by any
other path is refused (403), so nobody on the box can skip TLS and pose as another address.
One thread per connection, at most ``max_connections`` at a time (more are closed at once).
"""
from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
from pathlib import Path
from typing import Callable

import waitress

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0


class PeerMiddleware:
    """Replaces waitress's loopback peer with the TLS client's address; refuses unknown peers."""

    def __init__(self, app: Callable, peers: dict[int, tuple[str, int]]) -> None:
        self.app, self.peers = app, peers

    def __call__(self, environ, start_response):
        try:
            peer = self.peers.get(int(environ.get("REMOTE_PORT") or 0))
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
                 max_body: int = 1 << 30, threads: int = 8) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(str(cert), str(key))
        self.peers: dict[int, tuple[str, int]] = {}
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
        port = None
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                tls = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.debug("TLS handshake with %s failed: %s", addr[0], e)
                raw.close()
                return
            tls.settimeout(IDLE_TIMEOUT_S)
            backend = socket.create_connection(self.backend, timeout=IDLE_TIMEOUT_S)
            port = backend.getsockname()[1]
            self.peers[port] = (addr[0], addr[1])
            self._relay(tls, backend)
        except (OSError, ssl.SSLError) as e:
            log.debug("connection from %s ended: %s", addr[0], e)
        finally:
            if port is not None:
                self.peers.pop(port, None)
            for s in (backend, raw):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            self._slots.release()

    def _relay(self, tls: ssl.SSLSocket, backend: socket.socket) -> None:
        """Copy bytes both ways until either side closes; one thread touches the TLS object."""
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
                    backend.sendall(data)
                    while tls.pending():
                        backend.sendall(tls.recv(65536))
                if "backend" in ready:
                    data = backend.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
