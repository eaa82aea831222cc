"""Fetching a user-given http(s) URL without letting it reach inside the network.

A URL in a request could name 127.0.0.1, the cloud metadata address or a LAN service;
the server would then fetch it on the user's behalf (server-side request forgery). Every
address the host name resolves to must be public unless the host or its network is on the
allow-list, redirects are followed by hand so each hop is checked, and plain-http
requests connect to the address that was checked (a second DNS answer cannot swap in a
private one). For https the certificate must match the host name, which a rebinding to an
internal address cannot present.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from engine.errors import EngineError
from engine.settings import get_settings

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


def check_url(url: str, allow: Sequence[str] = ()) -> str:
    """The address to connect to for ``url``; raises FetchError when it is not allowed."""
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
    for address in addresses:
        if not _public(address) and not _allowed(host, address, allow):
            raise FetchError("url_not_allowed",
                             f"the host {host!r} resolves to a private or loopback address "
                             f"({address}); add it to HOMEPILOT_FETCH_ALLOW to allow it")
    return str(addresses[0])


def fetch(url: str, allow: Sequence[str] = (), max_bytes: int = 25 * 1024**2,
          timeout: float = 20.0) -> bytes:
    """The body of ``url`` (at most ``max_bytes``), each hop checked by ``check_url``."""
    deadline = time.monotonic() + timeout  # for the whole fetch: a slow drip ends too
    for _ in range(MAX_REDIRECTS + 1):
        address = check_url(url, allow)
        parts = urlsplit(url)
        target, headers = url, {}
        if parts.scheme == "http":  # connect to the address that was checked
            host = f"[{address}]" if ":" in address else address
            netloc = f"{host}:{parts.port}" if parts.port else host
            target = urlunsplit(parts._replace(netloc=netloc))
            name = (parts.hostname or "").encode("idna").decode("ascii")
            headers["Host"] = f"{name}:{parts.port}" if parts.port else name
        try:
            # trust_env off: a proxy from the environment would resolve the name itself.
            with httpx.stream("GET", target, headers=headers, timeout=timeout,
                              follow_redirects=False, trust_env=False) as response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise FetchError("fetch_failed", f"{url[:120]} answered "
                                     f"{response.status_code}")
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
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            raise FetchError("unreachable_url", f"{url[:120]} could not be fetched: "
                             f"{type(exc).__name__}: {exc}") from exc
    raise FetchError("fetch_failed", f"{url[:120]} redirects more than {MAX_REDIRECTS} times")


def fetch_url(url: str) -> bytes:
    """``fetch`` with the server's settings: its allow-list, upload cap and timeout."""
    settings = get_settings()
    return fetch(url, settings.fetch_allow_list(), settings.max_upload_mb * 1024**2,
                 settings.fetch_timeout)
