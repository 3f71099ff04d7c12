"""Keeping credentials out of everything emkit stores, prints or logs.

Why one module: a key can arrive three ways (an environment variable, the userinfo of a base URL
``http://user:KEY@host/v1``, or a query parameter ``?api_key=KEY``) and leave many ways (a stored
config or answer, an error line, a log record, the HTML report). Guarding each exit by hand misses
one; so every exit calls :func:`redact`, which removes

- the credentials of any URL in the text (userinfo dropped, sensitive query values masked), found
  by pattern, so a URL is safe even before any engine has seen it;
- every value an engine actually sent (registered with :func:`register`): the key itself, the key
  without its usual prefix (a server that echoes ``abc...`` of ``sk-abc...``), a URL's password,
  and the Basic-auth header value made from it;
- anything that looks like an OpenAI key or a bearer token.

The exits wired to it: :class:`emkit.errors.EmkitError` (every user-facing error line), the run
store's writes (without the key-like patterns, which would damage ordinary text in answers), and a
log-record factory installed here (every Python log record, the SDK's and httpx's included).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Shorter values are not treated as secrets: masking a 3-letter placeholder ("abc") everywhere
# would damage ordinary text, and such a value protects nothing.
MIN_SECRET_LENGTH = 6
# Query parameters that carry credentials (compared lower-case, '-' read as '_').
SENSITIVE_QUERY = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "auth", "password", "secret", "sig", "signature"}
)
_KEY_PREFIXES = ("sk-proj-", "sk-ant-", "sk-")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")
_URL_CREDS = re.compile(r"(://)[^/@\s]*@")
_KEYLIKE = re.compile(r"\b(sk-|Bearer\s+|Basic\s+)[A-Za-z0-9_\-\.\*+/=]{6,}")

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def register(value: str | None) -> None:
    """Remember a value that was (or will be) sent as a credential, so it is masked everywhere."""
    if not value:
        return
    value = str(value)
    forms = {value, quote(value, safe="")}
    for prefix in _KEY_PREFIXES:
        if value.startswith(prefix):
            forms.add(value[len(prefix) :])
            break
    with _lock:
        _secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)
    install_log_redaction()


def endpoint_problem(url: str) -> str:
    """Why ``url`` cannot be an endpoint (unparsable, not http(s), no host, a bad port); "" if it can."""
    try:
        parts = urlsplit(url)
        parse_qsl(parts.query, keep_blank_values=True)
        _ = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as err:
        return str(err) or "not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http:// and https:// endpoints are supported"
    return "" if parts.hostname else "no host in it"


def clean_url(url: str) -> str:
    """``url`` safe to store or show: no userinfo, sensitive query values masked; else unchanged."""
    try:
        parts = urlsplit(url)
        has_user = parts.username is not None or parts.password is not None
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return _URL_CREDS.sub(r"\1", url)
    secret_query = any(sensitive_name(k) for k, _ in query)
    if not has_user and not secret_query:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    masked = [(k, MASK if sensitive_name(k) else v) for k, v in query]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(masked, safe="*"), parts.fragment))


def redact(text: str, *, heuristics: bool = True) -> str:
    """``text`` with URL credentials, registered secrets and key-like tokens replaced by ``***``.

    ``heuristics=False`` skips the key-like patterns (``sk-...``, ``Bearer ...``): the run store
    uses that for research data, where "Basic principles" must stay as written; exact registered
    values and URL credentials are still removed.
    """
    if not text or not isinstance(text, str):
        return text
    if "://" in text:
        text = _URL.sub(lambda m: clean_url(m.group(0)), text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEYLIKE.sub(lambda m: m.group(1) + MASK, text) if heuristics else text


def redact_data(value: Any, *, heuristics: bool = True) -> Any:
    """:func:`redact` applied to every string inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        return redact(value, heuristics=heuristics)
    if isinstance(value, Mapping):
        return {
            redact_data(k, heuristics=heuristics): redact_data(v, heuristics=heuristics)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(v, heuristics=heuristics) for v in value]
    return value


def sensitive_name(name: str) -> bool:
    return name.lower().replace("-", "_") in SENSITIVE_QUERY


def install_log_redaction() -> None:
    """Make every log record created from now on carry a redacted message (idempotent).

    A record factory, not a handler filter: it covers records of every logger and whatever
    handlers the application configures later (a filter is only consulted by the handler or
    logger it is attached to).
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error path
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(factory)
