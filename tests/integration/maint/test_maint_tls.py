"""The TLS front end and waitress in-process: the client's address reaches the app, the plain backend port
(from any loopback address) is no way around TLS, a large body is relayed only after the authoriser
accepted its head, heads two parsers could read differently are refused, and the size limit holds."""
from __future__ import annotations

import http.client
import socket
import ssl
import time
import warnings

import pytest

from endcap.maint.server import TlsServer
from endcap.maint.tlscert import ensure_certificate
from tests.fixtures.maint import read_head


CALLS: list[str] = []


def echo_app(environ, start_response):
    CALLS.append(environ["PATH_INFO"])
    n = 0
    stream = environ["wsgi.input"]
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        n += len(chunk)
    body = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']} {n}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def server(tmp_path):
    cert, key = ensure_certificate(tmp_path, "", "", "localhost", ["127.0.0.1"])
    def authorize(head):  # stands for the app's session check (large_body_rule, tested end to end elsewhere)
        return None if head.headers.get("x-test-auth") == "yes" else (401, "not logged in")
    s = TlsServer(echo_app, bind="127.0.0.1", port=0, cert=cert, key=key, max_connections=4, max_body=256 << 20,
                  authorize=authorize).start()
    yield s, cert
    s.close()


def https(server_cert, port):
    return http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=str(server_cert)),
                                       timeout=20)


def test_client_address_and_scheme_reach_the_app(server):
    s, cert = server
    c = https(cert, s.port)
    c.request("POST", "/", body=b"x" * 300_000)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"127.0.0.1 https 300000"
    c.request("GET", "/")  # keep-alive: a second request on the same TLS connection
    assert c.getresponse().read() == b"127.0.0.1 https 0"
    c.close()


def test_backend_port_is_not_a_way_around_tls(server):
    s, _ = server
    c = http.client.HTTPConnection(*s.backend, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 403 and b"TLS" in r.read()


def test_body_over_the_limit_is_refused_before_it_is_read(server):
    s, cert = server
    c = https(cert, s.port)
    c.putrequest("POST", "/")
    c.putheader("Content-Length", str(257 << 20))
    c.putheader("X-Test-Auth", "yes")
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413


def test_old_tls_and_plain_text_are_refused(server):
    s, _ = server
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point: an old protocol
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1  # below the server's TLS 1.2 floor
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(raw)


def tls_socket(cert, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ssl.create_default_context(cafile=str(cert)).wrap_socket(raw, server_hostname="127.0.0.1")



def test_unauthenticated_large_body_is_refused_before_any_of_it_is_relayed(server):
    s, cert = server
    CALLS.clear()
    with tls_socket(cert, s.port) as t:
        t.sendall(b"POST /update/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        started = time.monotonic()
        answer = read_head(t)  # answered on the head alone: no body byte was sent
        assert answer.startswith(b"HTTP/1.1 401 ") and time.monotonic() - started < 5
        sent = 0
        with pytest.raises(OSError):
            while sent < 100_000_000:
                t.sendall(b"\0" * (1 << 20))
                sent += 1 << 20
        assert sent < 20_000_000  # the front end dropped the connection long before 100 MB
    assert CALLS == []  # waitress never saw the request


def test_authorised_large_body_and_small_bodies_pass_on_one_connection(server):
    s, cert = server
    c = https(cert, s.port)
    c.request("POST", "/small", body=b"y" * 1000)  # small: no authoriser needed
    assert c.getresponse().read() == b"127.0.0.1 https 1000"
    c.request("POST", "/big", body=b"x" * (3 << 20), headers={"X-Test-Auth": "yes"})
    assert c.getresponse().read() == f"127.0.0.1 https {3 << 20}".encode()
    c.putrequest("POST", "/big")  # the same connection, without: refused on the head
    c.putheader("Content-Length", str(3 << 20))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 401 and b"not logged in" in r.read()
    c.close()


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 50000000\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 50000000\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 50000000\r\n\r\n",
    b"POST / HTTP/1.1\nHost: x\nContent-Length: 50000000\n\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
])
def test_ambiguous_heads_are_refused(server, head):
    s, cert = server
    CALLS.clear()
    with tls_socket(cert, s.port) as t:
        t.sendall(head + b"hello")
        assert read_head(t).startswith(b"HTTP/1.1 400 ")
    assert CALLS == []


def test_chunked_body_needs_the_authoriser(server):
    s, cert = server
    with tls_socket(cert, s.port) as t:
        t.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert read_head(t).startswith(b"HTTP/1.1 401 ")
    with tls_socket(cert, s.port) as t:
        t.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Test-Auth: yes\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n")
        got = read_head(t)
        while not got.endswith(b"https 5"):
            more = t.recv(4096)
            if not more:
                break
            got += more
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"127.0.0.1 https 5")


def test_another_loopback_address_with_a_tls_clients_port_is_refused(server):
    s, cert = server
    with tls_socket(cert, s.port) as t:
        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the relay's backend connection now exists
        assert read_head(t).startswith(b"HTTP/1.1 200 ")
        (_addr, port), = list(s.peers)
        spoof = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        spoof.bind(("127.0.0.2", port))  # the same source port, another loopback address
        spoof.settimeout(10)
        spoof.connect((s.backend[0], int(s.backend[1])))
        try:
            spoof.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_head(spoof).startswith(b"HTTP/1.1 403 ")
        finally:
            spoof.close()
