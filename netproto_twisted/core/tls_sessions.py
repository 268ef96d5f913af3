"""TLS session resumption across connections (FTPS data channels), on pyOpenSSL.

An FTPS data connection should resume the control connection's TLS session
(RFC 4217 section 10.2 recommends it; vsftpd's ``require_ssl_reuse`` demands
it): a thief who connects to a passive port first cannot have the session.

- server side: :func:`resumable_server_options` turns on OpenSSL's server
  session cache on a context (Twisted's ``CertificateOptions`` turns it off
  and disables tickets), so that a client may resume; :func:`session_reused`
  tells, after the handshake, whether a connection did;
- client side: :class:`ResumingClientCreator` builds each new client
  connection with the session of another (the control connection's), taken
  with :func:`tls_session`.

pyOpenSSL has ``Connection.get_session``/``set_session`` but no public
``SSL_session_reused``; :func:`session_reused` calls it through pyOpenSSL's
binding (``OpenSSL._util.lib``) and returns ``None`` when that is missing,
so a caller can tell "not resumed" from "cannot tell".
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

__all__ = [
    "CAN_CHECK_REUSE",
    "ResumingClientCreator",
    "resumable_server_options",
    "session_reused",
    "tls_connection",
    "tls_session",
]

try:  # pyOpenSSL's cffi binding; not public API, hence the fallback
    from OpenSSL._util import lib as _lib

    _session_reused: Any = getattr(_lib, "SSL_session_reused", None)
except ImportError:  # pragma: no cover - a pyOpenSSL without its binding module
    _session_reused = None

#: Whether :func:`session_reused` can answer (pyOpenSSL exposes ``SSL_session_reused``).
CAN_CHECK_REUSE = _session_reused is not None


def resumable_server_options(options: ssl.CertificateOptions) -> ssl.CertificateOptions:
    """Turn on the server session cache of ``options``' context (returned for chaining).

    Twisted sets a session id context, but ``SESS_CACHE_OFF`` and no
    tickets: no client could resume.  With the cache on, TLS 1.2 resumes by
    session id and TLS 1.3 by (stateful) tickets.  Use a context of its own:
    every connection sharing it may then resume.
    """
    options.getContext().set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    return options


def tls_connection(transport: object) -> SSL.Connection | None:
    """The pyOpenSSL connection behind a TLS transport (``getHandle()``), else ``None``."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    try:
        handle = get_handle()
    except Exception:
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def session_reused(transport: object) -> bool | None:
    """Whether the TLS connection of ``transport`` resumed a session (``None``: cannot tell)."""
    connection = tls_connection(transport)
    if connection is None or _session_reused is None:
        return None
    raw = getattr(connection, "_ssl", None)  # pyOpenSSL's SSL* pointer
    if raw is None:
        return None
    return bool(_session_reused(raw))


def tls_session(transport: object) -> SSL.Session | None:
    """The current session of a TLS transport, to resume elsewhere (``None`` if none)."""
    connection = tls_connection(transport)
    if connection is None:
        return None
    return connection.get_session()


@implementer(IOpenSSLClientConnectionCreator)
class ResumingClientCreator:
    """Client connections from ``creator``, each offered the session ``session()`` returns.

    Use the same ``creator`` (so the same OpenSSL context) as the connection
    whose session is resumed.
    """

    def __init__(self, creator: Any, session: Any) -> None:
        self._creator = creator
        self._session = session

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A new client connection that offers the session."""
        connection: SSL.Connection = self._creator.clientConnectionForTLS(tlsProtocol)
        session = self._session()
        if session is not None:
            connection.set_session(session)
        return connection
