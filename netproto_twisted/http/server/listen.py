"""HTTPS listeners that offer HTTP/2 by ALPN.

Twisted's ``ssl:`` endpoint string builds a TLS context without ALPN, so a
client could never negotiate ``h2``.  :func:`split_tls_endpoint` turns an
``ssl:`` string into the plain ``tcp:`` one for the same port and the
certificate files it named; :func:`https_factory` wraps the site's factory in
TLS with ALPN offering ``h2`` then ``http/1.1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.internet.interfaces import IProtocolFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.http import H2_ENABLED

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.tls import server_context

__all__ = ["ALPN_PROTOCOLS", "TLSEndpoint", "https_factory", "split_tls_endpoint"]

#: What an HTTPS listener offers by ALPN, preferred first: ``h2`` only where
#: twisted.web can speak it (its ``http2`` extra, h2 and priority, installed).
ALPN_PROTOCOLS = (b"h2", b"http/1.1") if H2_ENABLED else (b"http/1.1",)
_SPLIT = re.compile(r"(?<!\\):")
_TLS_ARGS = ("privateKey", "certKey", "extraCertChain")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


@dataclass(frozen=True)
class TLSEndpoint:
    """An ``ssl:`` endpoint split into its TCP part and its certificate files."""

    tcp: str
    cert: str
    key: str
    chain: str | None


def split_tls_endpoint(text: str) -> TLSEndpoint:
    """Split ``ssl:PORT:...:privateKey=...:certKey=...`` (raises :class:`ConfigError`)."""
    parts = _SPLIT.split(text)
    if parts[0].strip().lower() != "ssl" or len(parts) < 2:
        raise ConfigError(text, "not an ssl: endpoint")
    tcp = ["tcp"]
    files: dict[str, str] = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if eq and name in _TLS_ARGS:
            files[name] = _unescape(value)
        elif eq and name in ("sslmethod", "dhParameters"):
            continue
        else:
            tcp.append(part)
    key = files.get("privateKey", "")
    if not key:
        raise ConfigError(text, "an ssl: endpoint needs privateKey= (and certKey=)")
    return TLSEndpoint(":".join(tcp), files.get("certKey", key), key, files.get("extraCertChain"))


def https_factory(factory: IProtocolFactory, endpoint: TLSEndpoint) -> IProtocolFactory:
    """Wrap ``factory`` in server TLS with the endpoint's certificate and ALPN h2/http/1.1."""
    options = server_context(
        endpoint.cert, endpoint.key, chain_path=endpoint.chain, alpn=ALPN_PROTOCOLS
    )
    return TLSMemoryBIOFactory(options, False, factory)
