"""Endpoints emkit connects to: checked once, credentials taken out of the URL and registered.

Why apart from :mod:`emkit.redact`: refusing a URL is a user error (:class:`~emkit.errors.InputError`),
and every user error is redacted by :mod:`emkit.errors`, which imports :mod:`emkit.redact`; the
check lives above both, so neither imports the other back.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from emkit.errors import InputError
from emkit.redact import clean_url, endpoint_problem, register, sensitive_name


def check_endpoint(url: str) -> str:
    """``url`` if it can be an endpoint, else one line (credentials stripped) that says why.

    Shared by every client (:func:`split_url`) and by the experiment file's ``base_url`` fields,
    so a typo is refused when the file loads, not after the stages before the judge have run.
    """
    problem = endpoint_problem(url)
    if problem:
        raise InputError(f"base URL {clean_url(str(url))!r}: {problem} (e.g. http://localhost:8000/v1)")
    return url


def split_url(url: str) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """(URL without userinfo or query, its query parameters, (user, password) or None).

    What a client needs to connect with credentials given inside a URL: the SDK takes the query as
    ``default_query``; the userinfo is kept by the caller in the URL it connects to (httpx turns it
    into Basic auth). Every credential found is registered.

    Every endpoint emkit connects to passes here, so :func:`check_endpoint` refuses a URL that
    cannot work before any request is retried against it.
    """
    check_endpoint(url)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    userinfo = None
    if parts.username is not None or parts.password is not None:
        userinfo = (parts.username or "", parts.password or "")
        register(parts.password)
        if parts.password:
            basic = base64.b64encode(f"{userinfo[0]}:{userinfo[1]}".encode()).decode()
            register(basic)
    for name, value in query.items():
        if sensitive_name(name):
            register(value)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", parts.fragment)), query, userinfo


def display_url(url: str) -> str:
    """The base URL without credentials or query string, safe to show in messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url
