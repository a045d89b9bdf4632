"""The TLS front end and waitress in-process: the client's address reaches the app, the plain backend port
is no way around TLS, uploads stream through with the size limit, and the connection cap holds."""
from __future__ import annotations

import http.client
import socket
import ssl
import warnings

import pytest

from endcap.maint.server import TlsServer
from endcap.maint.tlscert import ensure_certificate


def echo_app(environ, start_response):
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
    s = TlsServer(echo_app, bind="127.0.0.1", port=0, cert=cert, key=key, max_connections=2, max_body=1 << 20).start()
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
    c.putheader("Content-Length", str(2 << 20))
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
