"""Pure HTTP/1.1 request-head rules the TLS front end applies before a request body reaches waitress.

``parse_head`` splits one request head into method, target and headers, refusing anything two HTTP
parsers could read differently (folded lines, space before the colon, more than one ``Content-Length``,
``Content-Length`` together with ``Transfer-Encoding``): the front end and waitress must agree on where
each request ends. ``decide`` says what to do with the body: relay it as is (small), ask the
authoriser first (large or of unknown length), or refuse it outright (over the hard limit).
"""
from __future__ import annotations

from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Optional

MAX_HEAD = 64 * 1024  # bytes of request line + headers
SMALL_BODY = 1 << 20  # bodies up to this size are relayed without asking the authoriser


class HeadError(ValueError):
    """The head is not one the front end relays; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", " (Cookie with "; ")
    length: Optional[int]  # Content-Length; None with Transfer-Encoding; 0 when neither is sent
    chunked: bool

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def cookie(self, name: str) -> str:
        try:
            jar = SimpleCookie(self.headers.get("cookie", ""))
        except CookieError:
            return ""
        morsel = jar.get(name)
        return morsel.value if morsel is not None else ""


def parse_head(raw: bytes) -> Head:
    """One request head (without the blank line that ends it). Raises HeadError naming the fault."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes every byte; kept for clarity
        raise HeadError("request head: not text") from None
    if text.count("\n") != text.count("\r\n") or text.count("\r") != text.count("\r\n"):
        raise HeadError("request head: bare CR or LF (lines must end with CRLF)")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise HeadError(f"request line: {lines[0][:80]!r} is not METHOD TARGET HTTP/1.x")
    headers: dict[str, str] = {}
    lengths: list[str] = []
    for line in lines[1:]:
        if not line:
            raise HeadError("request head: empty line inside the head")
        if line[0] in " \t":
            raise HeadError("request head: folded header line")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HeadError(f"request head: {line[:60]!r} is not NAME: VALUE")
        key, value = name.lower(), value.strip()
        if key == "content-length":
            lengths.append(value)
        joiner = "; " if key == "cookie" else ", "
        headers[key] = headers[key] + joiner + value if key in headers else value
    chunked = "transfer-encoding" in headers
    if chunked and lengths:
        raise HeadError("request head: both Content-Length and Transfer-Encoding")
    if len(lengths) > 1:
        raise HeadError("request head: more than one Content-Length")
    length: Optional[int] = None if chunked else 0
    if lengths:
        if not (lengths[0].isascii() and lengths[0].isdigit() and len(lengths[0]) <= 18):
            raise HeadError(f"Content-Length: {lengths[0][:30]!r} is not a number of bytes")
        length = int(lengths[0])
    return Head(parts[0], parts[1], headers, length, chunked)


def decide(head: Head, *, small: int = SMALL_BODY, limit: int) -> str:
    """``relay`` (small body), ``ask`` (large or unknown length: the authoriser decides) or ``too-large``."""
    if head.length is not None and head.length > limit:
        return "too-large"
    if head.length is not None and head.length <= small:
        return "relay"
    return "ask"


def response(status: int, reason: str, message: str) -> bytes:
    """A complete ``Connection: close`` JSON response the front end sends itself."""
    import json
    body = json.dumps({"ok": False, "message": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n").encode() + body
