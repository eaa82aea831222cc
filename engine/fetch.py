"""Fetching a user-given http(s) URL without letting it reach inside the network.

A URL in a request could name 127.0.0.1, the cloud metadata address or a LAN service;
the server would then fetch it on the user's behalf (server-side request forgery). Every
outbound call of nodes and of the server goes through ``open_url``: every address the host
name resolves to must be public unless the host or its network is on the allow-list (or
the URL is one the operator configured, such as the LLM provider's base URL), redirects
are followed by hand so each hop is checked, and plain-http
requests connect to the address that was checked (a second DNS answer cannot swap in a
private one). For https the certificate must match the host name, which a rebinding to an
internal address cannot present.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from engine.errors import EngineError
from engine.settings import Settings, get_settings

MAX_REDIRECTS = 3


class FetchError(EngineError):
    """A URL that may not be fetched, or whose fetch failed; ``code`` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
             allow: Sequence[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _public(address: Address) -> bool:
    """Global, and no private IPv4 address inside it either: IPv6 forms that carry an IPv4
    address (mapped, 6to4, Teredo, NAT64) reach that IPv4 host on networks that route them,
    yet Python calls several of them global."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = [address.ipv4_mapped, address.sixtofour,
                 address.teredo[1] if address.teredo else None]
        if address in _NAT64:
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if int(address) >> 32 == 0:  # the old IPv4-compatible form ::a.b.c.d
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(v4 is None or v4.is_global for v4 in inner)
    return True


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the unit trust is given to."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def check_url(url: str, allow: Sequence[str] = (), trusted: Sequence[str] = ()) -> str:
    """The address to connect to for ``url``; raises FetchError when it is not allowed.

    ``trusted``: URLs the operator configured (a provider's base URL): their origin may be
    private, since it was not given by a caller."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise FetchError("invalid_url", "the URL has spaces or control characters in it")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError("invalid_url", f"only http(s) URLs can be fetched, not {url[:80]!r}")
    host = parts.hostname
    if not host:
        raise FetchError("invalid_url", f"the URL {url[:80]!r} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise FetchError("unreachable_url", f"the host {host!r} cannot be resolved: {exc}") \
            from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if origin(url) in {origin(t) for t in trusted}:
        return str(addresses[0])
    for address in addresses:
        if not _public(address) and not _allowed(host, address, allow):
            raise FetchError("url_not_allowed",
                             f"the host {host!r} resolves to a private or loopback address "
                             f"({address}); add it to HOMEPILOT_FETCH_ALLOW to allow it")
    return str(addresses[0])


def _pinned(url: str, address: str) -> tuple[str, dict[str, str]]:
    """(URL to connect to, extra headers). Plain http connects to the address that was
    checked, naming the host in ``Host``; https keeps the name (the certificate must
    match it, which a rebinding to an internal address cannot present)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return url, {}
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    name = (parts.hostname or "").encode("idna").decode("ascii")
    return (urlunsplit(parts._replace(netloc=netloc)),
            {"Host": f"{name}:{parts.port}" if parts.port else name})


@contextmanager
def open_url(method: str, url: str, *, allow: Sequence[str] = (),
             trusted: Sequence[str] = (), timeout: float = 20.0,
             headers: dict[str, str] | None = None,
             json: Any = None) -> Iterator[httpx.Response]:
    """A streamed response from ``url``, every hop checked by ``check_url``: the one way
    nodes and the server reach other hosts. GET follows up to MAX_REDIRECTS redirects;
    other methods never follow one (a body must not be re-sent somewhere else)."""
    for _ in range(MAX_REDIRECTS + 1):
        target, pinning = _pinned(url, check_url(url, allow, trusted))
        try:
            # trust_env off: a proxy from the environment would resolve the name itself.
            with httpx.stream(method, target, headers={**(headers or {}), **pinning},
                              json=json, timeout=timeout, follow_redirects=False,
                              trust_env=False) as response:
                if response.is_redirect and "location" in response.headers:
                    if method != "GET":
                        raise FetchError("fetch_failed", f"{url[:120]} redirects to "
                                         f"{response.headers['location'][:120]}; give that "
                                         "URL instead")
                    url = urljoin(url, response.headers["location"])
                    continue
                yield response
                return
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            raise FetchError("unreachable_url", f"{url[:120]} could not be fetched: "
                             f"{type(exc).__name__}: {exc}") from exc
    raise FetchError("fetch_failed", f"{url[:120]} redirects more than {MAX_REDIRECTS} times")


def fetch(url: str, allow: Sequence[str] = (), max_bytes: int = 25 * 1024**2,
          timeout: float = 20.0, trusted: Sequence[str] = ()) -> bytes:
    """The body of ``url`` (at most ``max_bytes``), each hop checked by ``check_url``."""
    deadline = time.monotonic() + timeout  # for the whole fetch: a slow drip ends too
    with open_url("GET", url, allow=allow, trusted=trusted, timeout=timeout) as response:
        if response.status_code >= 400:
            raise FetchError("fetch_failed", f"{url[:120]} answered {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise FetchError("too_large", f"{url[:120]} is larger than "
                                 f"{max_bytes // 1024**2} MB")
            if time.monotonic() > deadline:
                raise FetchError("fetch_timeout", f"{url[:120]} took longer than "
                                 f"{timeout:g} s")
        return bytes(body)


def fetch_url(url: str) -> bytes:
    """``fetch`` with the server's settings: its allow-list, upload cap and timeout."""
    settings = get_settings()
    return fetch(url, settings.fetch_allow_list(), settings.max_upload_mb * 1024**2,
                 settings.fetch_timeout, settings.trusted_urls())


def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of a streamed body, whatever its real size."""
    head = bytearray()
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= max_bytes:
            break
    return bytes(head[:max_bytes])


@contextmanager
def request_url(method: str, url: str, *, timeout: float, headers: dict[str, str] | None = None,
                json: Any = None, settings: Settings | None = None) -> Iterator[httpx.Response]:
    """``open_url`` under the settings' allow-list and configured provider URLs (the
    process's settings unless the server passes its own)."""
    settings = settings or get_settings()
    with open_url(method, url, allow=settings.fetch_allow_list(),
                  trusted=settings.trusted_urls(), timeout=timeout, headers=headers,
                  json=json) as response:
        yield response
