"""Pure redaction of text that leaves the device in a diagnostic download or is shown in logs.

Removes passwords, tokens, secrets and keys (``key=value``, ``key: value``, JSON ``"key": "value"``),
credentials in URLs, bearer tokens, PEM private keys and shopper ids. Over-redacting is acceptable;
leaking is not.
"""
from __future__ import annotations

import re

MASK = "[REDACTED]"
_KEYS = r"(?:password|passwd|pwd|pass|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|key|dsn|authorization|cookie|shopper[_-]?id|loyalty[_-]?id|setup[_-]?code)"
_RULES = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), MASK),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@"), r"\1" + MASK + "@"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + MASK),
    (re.compile(r'(?i)("[^"]*' + _KEYS + r'[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*"'), r'\1"' + MASK + '"'),
    (re.compile(r"(?i)(\b[\w.-]*" + _KEYS + r"[\w.-]*\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1" + MASK),
]


def redact(text: str) -> str:
    for rx, repl in _RULES:
        text = rx.sub(repl, text)
    return text
