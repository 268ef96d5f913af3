"""A TLS server that a client offering unknown ALPN protocols can still reach.

Twisted (26.x) installs an ALPN selection callback on every server context,
also when the server speaks no ALPN protocol at all, and that callback
answers "no overlap" with an empty name, which OpenSSL turns into a fatal
``internal_error`` alert.  So an IMAPS, POP3S, SMTPS, NNTPS or FTPS server
refused every client that offered ALPN (curl, browsers, modern mail
clients), and an HTTPS server refused a client that offered only protocols
it does not speak.  RFC 7301 section 3.2 lets a server that supports none
of the offered protocols go on without ALPN; this module puts back that
behaviour:

- :func:`tolerant_alpn` replaces the callback of a context the project
  builds (:func:`netproto_twisted.core.tls.server_context`, which STARTTLS
  and every ``--tls-cert`` server use);
- :func:`prepare_tls_endpoint` does it for an ``ssl:`` endpoint string's
  options, which Twisted builds, before the listener takes its first
  connection (a context cannot change once a connection used it).

The choice is Twisted's otherwise: the wrapped factory's
``acceptableProtocols()`` (twisted.web's Site offers ``h2`` when it can
speak it), then the context's own list, the first one the client offered.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IProtocolNegotiationFactory

from netproto_twisted.core._twisted_compat import ssl_endpoint_options

__all__ = ["prepare_tls_endpoint", "prepare_tls_options", "tolerant_alpn"]

#: Contexts whose selection callback is already ours.
_TOLERANT: weakref.WeakSet[SSL.Context] = weakref.WeakSet()


def _negotiated(connection: SSL.Connection) -> Sequence[bytes]:
    """What the factory behind ``connection`` speaks, by ALPN name (nothing if it says nothing)."""
    tls_protocol = connection.get_app_data()
    factory = getattr(getattr(tls_protocol, "factory", None), "wrappedFactory", None)
    negotiation = IProtocolNegotiationFactory(factory, None)
    if negotiation is None:
        return ()
    return tuple(negotiation.acceptableProtocols())


def _selector(static: Sequence[bytes]) -> Callable[[SSL.Connection, list[bytes]], Any]:
    own = tuple(static)

    def select(connection: SSL.Connection, offered: list[bytes]) -> Any:
        for name in (*_negotiated(connection), *own):
            if name in offered:
                return name
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def tolerant_alpn(context: SSL.Context, static: Sequence[bytes] = ()) -> None:
    """Make ``context`` pick from ``static`` (after the factory's own) or go on without ALPN."""
    context.set_alpn_select_callback(_selector(static))
    _TOLERANT.add(context)


def prepare_tls_options(options: object) -> None:
    """Build the context of TLS ``options`` now and make it tolerant (once per context).

    Anything without ``getContext()`` (a connection creator of another
    kind) is left alone.
    """
    get_context = getattr(options, "getContext", None)
    if get_context is None:
        return
    context = get_context()
    if isinstance(context, SSL.Context) and context not in _TOLERANT:
        tolerant_alpn(context)


def prepare_tls_endpoint(endpoint: object) -> None:
    """Make the context of a parsed ``ssl:`` server endpoint tolerant; others are left alone."""
    options = ssl_endpoint_options(endpoint)
    if options is not None:
        prepare_tls_options(options)
