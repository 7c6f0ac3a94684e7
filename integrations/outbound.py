"""Outbound requests to addresses a tenant chose: checked, pinned, capped (OWASP API7:2023 SSRF).

`check_url` refuses anything but `http`/`https` to a host whose every resolved address is
public; `pinned_request` then connects to exactly the address that was checked (a DNS answer
that changes between check and connect cannot move it), sends the original `Host` header and
TLS SNI, follows no redirect, and reads the body up to a cap within a total deadline.

Refused address forms (`OutboundRefused.reason`):
  scheme              anything but http/https
  userinfo            credentials in the URL (`http://user@host/`)
  port                port 0 (`http://host:0/`): no service can listen there
  numeric_host        IPv4 in a non-dotted-quad form: decimal `2130706433`, octal `0177.0.0.1`,
                      hex `0x7f000001`, short `127.1` (parsers disagree on these, RFC 3986 §7.4)
  zone_id             an IPv6 literal with a zone (`fe80::1%eth0`)
  unresolvable        no address for the host
  unspecified         0.0.0.0/8, ::
  loopback            127.0.0.0/8, ::1 (admitted only with `allow_private`)
  private             RFC 1918 10/8, 172.16/12, 192.168/16; IPv6 unique-local fc00::/7
  link_local          169.254.0.0/16 (incl. the metadata service 169.254.169.254), fe80::/10
  shared              carrier-grade NAT 100.64.0.0/10 (RFC 6598)
  multicast           224.0.0.0/4, ff00::/8
  reserved            240.0.0.0/4, broadcast, documentation and benchmark ranges, and any other
                      address `ipaddress` does not call global (IANA special-purpose registries)
An IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible, 6to4 (2002::/16) or NAT64 (64:ff9b::/96)
IPv6 address is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses it resolves to, as strings; injected in tests (no real DNS)."""

DEFAULT_BODY_CAP_BYTES = 64 * 1024
READ_CHUNK_BYTES = 4096

_SCHEMES = {"http": 80, "https": 443}
# WHATWG URL: a host whose last label is a number is an IPv4 address in some notation.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_QUAD_PART = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"^{_QUAD_PART}\.{_QUAD_PART}\.{_QUAD_PART}\.{_QUAD_PART}$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class OutboundRefused(ValueError):
    """The URL or one of its addresses may not be called; `reason` says which rule refused it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class OutboundTimeout(Exception):
    """The exchange did not finish within its total deadline (connect, headers and body)."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed `check_url`, with the addresses it was checked against."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IpAddress, ...]

    @property
    def address(self) -> IpAddress:
        """The address a request connects to: the first checked one."""
        return self.addresses[0]


@dataclass(frozen=True)
class OutboundResponse:
    """What came back: status, headers, up to the cap of the body, and whether it was cut."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool
    latency_ms: int


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer for `host` (getaddrinfo), every address once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0])] = None
    return list(seen)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, RFC 4291)
        return ipaddress.IPv4Address(int(ip))
    return None


def address_refusal(ip: IpAddress, *, allow_private: bool) -> str | None:
    """Why `ip` may not be called (a reason from the module docstring), or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "zone_id"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_refusal(inner, allow_private=allow_private)
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and int(ip) >> 24 == 0):
        return "unspecified"
    if ip.is_loopback:
        return None if allow_private else "loopback"
    if ip.is_link_local:
        return "link_local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared"
    if ip.is_multicast:
        return "multicast"
    if any(ip in network for network in _PRIVATE if network.version == ip.version):
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def _literal(host: str) -> IpAddress | None:
    """The address a host names literally; refuses the numeric forms parsers disagree on."""
    if ":" in host:  # urllib strips the brackets of an IPv6 literal
        if "%" in host:
            raise OutboundRefused("zone_id", f"IPv6 zone identifiers are refused: {host}")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise OutboundRefused("numeric_host", f"not an IPv6 address: {host}") from exc
    labels = host.rstrip(".").split(".")
    if labels and _NUMERIC_LABEL.match(labels[-1]):
        if not _CANONICAL_IPV4.match(host.rstrip(".")):
            raise OutboundRefused(
                "numeric_host", f"IPv4 addresses must be written as a.b.c.d in decimal: {host}"
            )
        return ipaddress.IPv4Address(host.rstrip("."))
    return None


def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> CheckedUrl:
    """Check that `url` may be called, resolving its host and judging EVERY address.

    `allow_private` admits loopback only (development and tests); every other class in the
    module docstring stays refused. Raises `OutboundRefused` naming the rule; the resolver
    defaults to the system's (`system_resolver`); an unresolvable host is refused too.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused("malformed", f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise OutboundRefused("scheme", f"only http and https URLs are allowed, not {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("userinfo", "credentials in the URL are refused")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundRefused("malformed", "the URL has no host")
    if port == 0:  # urlsplit reads ":0" as a port; nothing listens there to receive a call
        raise OutboundRefused("port", "port 0 is not a port a URL can be called on")
    port = port or _SCHEMES[scheme]
    literal = _literal(host)
    if literal is not None:
        addresses: tuple[IpAddress, ...] = (literal,)
    else:
        try:
            answers = (resolver or system_resolver)(host, port)
            addresses = tuple(ipaddress.ip_address(a) for a in answers)
        except (OSError, ValueError, UnicodeError) as exc:
            raise OutboundRefused("unresolvable", f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise OutboundRefused("unresolvable", f"{host} resolves to no address")
    for ip in addresses:
        reason = address_refusal(ip, allow_private=allow_private)
        if reason is not None:
            raise OutboundRefused(reason, f"{host} resolves to a {reason} address ({ip})")
    return CheckedUrl(url=url.strip(), scheme=scheme, host=host, port=port, addresses=addresses)


class PinnedAdapter(HTTPAdapter):
    """A transport adapter that connects to one checked address whatever the URL's host says.

    The request keeps its URL, so the `Host` header names the original host; over https the
    TLS handshake sends that host as SNI and the certificate is verified against it. Every
    socket it opens is kept in `sockets`, so a watchdog can cut the exchange at its deadline.
    """

    def __init__(self, checked: CheckedUrl) -> None:
        self.checked = checked
        self.sockets: list[socket.socket] = []
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.poolmanager.pool_classes_by_scheme = _watched_pools(self.sockets)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """The pool for the checked address; proxies are never used for outbound calls."""
        host_params, key_kwargs = self.build_connection_pool_key_attributes(
            request, True if verify is None else verify, cert
        )
        pool_kwargs: dict[str, Any] = dict(key_kwargs)
        host_params["host"] = str(self.checked.address)
        host_params["port"] = self.checked.port
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.checked.host
            pool_kwargs["assert_hostname"] = self.checked.host
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """Always the path form: never an absolute URL for a proxy."""
        return request.path_url

    def cut(self) -> None:
        """Shut every socket down: a read blocked on one returns at once."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _watched_pools(sockets: list[socket.socket]) -> dict[str, Any]:
    """Pool classes whose connections append each new socket to `sockets`."""

    class WatchedHTTPConnection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            sockets.append(sock)
            return sock

    class WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            sockets.append(sock)
            return sock

    class WatchedHTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def pinned_request(
    checked: CheckedUrl,
    method: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    connect_timeout_s: float,
    total_timeout_s: float,
    body_cap_bytes: int = DEFAULT_BODY_CAP_BYTES,
    verify: bool | str = True,
) -> OutboundResponse:
    """Send one request to `checked.address`; no redirects, no proxies, no environment.

    The whole exchange (connect, TLS, headers and body) ends within `total_timeout_s` seconds:
    a watchdog shuts the socket down at the deadline and `OutboundTimeout` is raised. The body
    is read up to `body_cap_bytes` and the rest dropped (`truncated`). Transport failures raise
    `requests.RequestException` subclasses. A 3xx is returned as it is: its `Location` is
    never followed. `verify` is requests' (a CA bundle path, or the default bundle).
    """
    started = time.monotonic()
    session = requests.Session()
    session.trust_env = False  # no proxies, no ~/.netrc: the address is the checked one
    session.verify = verify
    adapter = PinnedAdapter(checked)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    host_header = checked.host if ":" not in checked.host else f"[{checked.host}]"
    if checked.port != _SCHEMES[checked.scheme]:
        host_header = f"{host_header}:{checked.port}"
    sent_headers = {"Host": host_header, **dict(headers or {})}
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        adapter.cut()

    watchdog = threading.Timer(total_timeout_s, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        response = session.request(
            method,
            checked.url,
            headers=sent_headers,
            data=body,
            timeout=(min(connect_timeout_s, total_timeout_s), total_timeout_s),
            allow_redirects=False,
            stream=True,
        )
        try:
            data, truncated = _read_capped(response, body_cap_bytes)
        finally:
            response.close()
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if expired.is_set() or isinstance(exc, requests.Timeout):
            raise OutboundTimeout(f"no complete answer within {total_timeout_s:g} s") from exc
        raise
    finally:
        watchdog.cancel()
        session.close()
    if expired.is_set():
        raise OutboundTimeout(f"no complete answer within {total_timeout_s:g} s")
    latency_ms = int((time.monotonic() - started) * 1000)
    return OutboundResponse(response.status_code, response.headers, data, truncated, latency_ms)


def _read_capped(response: requests.Response, cap: int) -> tuple[bytes, bool]:
    """Up to `cap` bytes of the body, and whether more was left unread."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = response.raw.read1(min(READ_CHUNK_BYTES, cap - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), True
