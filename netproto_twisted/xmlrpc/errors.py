"""XML-RPC errors: the stdlib's :class:`~xmlrpc.client.Fault` and friends, in our hierarchy.

Each class here subclasses both the stdlib class of the same name and
:class:`XMLRPCError` (a :class:`~netproto_twisted.core.errors.NetprotoError`),
so code written against :mod:`xmlrpc.client` (``except xmlrpc.client.Fault``)
keeps working.  The fault codes are the "specification for fault code
interoperability" ones the stdlib also names (``xmlrpc.client.PARSE_ERROR``...).
"""

from __future__ import annotations

import errno
import socket
import ssl
import xmlrpc.client
from typing import Any

from netproto_twisted.core.errors import NetprotoError

__all__ = [
    "APPLICATION_ERROR",
    "INTERNAL_ERROR",
    "INVALID_METHOD_PARAMS",
    "INVALID_XMLRPC",
    "METHOD_NOT_FOUND",
    "NOT_WELLFORMED_ERROR",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "SYSTEM_ERROR",
    "TRANSPORT_ERROR",
    "UNSUPPORTED_ENCODING",
    "BodyTooLarge",
    "ConnectionLost",
    "ConnectionRefused",
    "Fault",
    "HostNotFound",
    "ProtocolError",
    "ResponseError",
    "TLSError",
    "TransportError",
    "UnsafeXML",
    "XMLRPCError",
    "XMLRPCTimeout",
]

#: Parse error: the document is not well formed.
PARSE_ERROR = xmlrpc.client.PARSE_ERROR  # -32700
#: Alias of :data:`PARSE_ERROR` (the stdlib's name for it).
NOT_WELLFORMED_ERROR = xmlrpc.client.NOT_WELLFORMED_ERROR  # -32700
#: The document's encoding is not supported.
UNSUPPORTED_ENCODING = xmlrpc.client.UNSUPPORTED_ENCODING  # -32701
#: Server error: well-formed XML that is not an XML-RPC call.
INVALID_XMLRPC = xmlrpc.client.INVALID_XMLRPC  # -32600
#: Alias of :data:`INVALID_XMLRPC`.
SERVER_ERROR = xmlrpc.client.SERVER_ERROR  # -32600
#: The method is not registered.
METHOD_NOT_FOUND = xmlrpc.client.METHOD_NOT_FOUND  # -32601
#: The arguments do not fit the method's signature.
INVALID_METHOD_PARAMS = xmlrpc.client.INVALID_METHOD_PARAMS  # -32602
#: The server failed to marshal the result (or another internal error).
INTERNAL_ERROR = xmlrpc.client.INTERNAL_ERROR  # -32603
#: The method raised an exception that is not a :class:`Fault`.
APPLICATION_ERROR = xmlrpc.client.APPLICATION_ERROR  # -32500
#: A system error (authentication, limits) on the server.
SYSTEM_ERROR = xmlrpc.client.SYSTEM_ERROR  # -32400
#: A transport error.
TRANSPORT_ERROR = xmlrpc.client.TRANSPORT_ERROR  # -32300


class XMLRPCError(NetprotoError):
    """Base class of the XML-RPC errors."""


class Fault(xmlrpc.client.Fault, XMLRPCError):
    """An XML-RPC fault: ``faultCode`` (int) and ``faultString`` (str), as in the stdlib."""

    def __init__(self, faultCode: int, faultString: str, **extra: Any) -> None:
        xmlrpc.client.Fault.__init__(self, faultCode, faultString, **extra)
        self.args = (faultCode, faultString)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.faultCode, self.faultString))


class ProtocolError(xmlrpc.client.ProtocolError, XMLRPCError):
    """An HTTP failure: ``url``, ``errcode``, ``errmsg`` and ``headers``, as in the stdlib."""

    def __init__(self, url: str, errcode: int, errmsg: str, headers: Any) -> None:
        xmlrpc.client.ProtocolError.__init__(self, url, errcode, errmsg, headers)
        self.args = (url, errcode, errmsg)


class ResponseError(xmlrpc.client.ResponseError, XMLRPCError):
    """The peer sent a document that is not well-formed XML-RPC (or exceeds a limit)."""

    #: The fault code a server answers this error with.
    fault_code: int = PARSE_ERROR


class BodyTooLarge(XMLRPCError):
    """A body (or its decompressed form) exceeds the size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class XMLRPCTimeout(XMLRPCError, TimeoutError):
    """A call got no complete response in time."""


class TransportError(XMLRPCError, OSError):
    """The call got no HTTP answer: the connection failed or broke (an :class:`OSError`).

    :class:`xmlrpc.client.ServerProxy` lets the socket's own errors through
    (``ConnectionRefusedError``, ``socket.gaierror``, ``ssl.SSLError``...),
    so code written for it catches ``OSError``; the subclasses below are
    also those built-in classes, and ``errno`` is set where one applies.
    """


class ConnectionRefused(TransportError, ConnectionRefusedError):
    """The server refused the connection (a :class:`ConnectionRefusedError`)."""

    def __init__(self, message: str) -> None:
        OSError.__init__(self, errno.ECONNREFUSED, message)


class HostNotFound(TransportError, socket.gaierror):
    """The server's name did not resolve (a :class:`socket.gaierror`)."""

    def __init__(self, message: str) -> None:
        OSError.__init__(self, socket.EAI_NONAME, message)


class TLSError(TransportError, ssl.SSLError):
    """The TLS handshake failed, e.g. an unverifiable certificate (an :class:`ssl.SSLError`).

    ``library`` and ``reason`` are OpenSSL's, as the stdlib's error has them
    (``reason`` ``"CERTIFICATE_VERIFY_FAILED"`` for an untrusted
    certificate), or ``None`` when unknown.
    """

    def __init__(
        self, message: str, library: str | None = None, reason: str | None = None
    ) -> None:
        OSError.__init__(self, ssl.SSL_ERROR_SSL, message)
        self.library = library  # type: ignore[assignment]
        self.reason = reason  # type: ignore[assignment]


class ConnectionLost(TransportError, ConnectionResetError):
    """The connection closed before the answer was complete (a :class:`ConnectionResetError`).

    The stdlib's ``http.client.RemoteDisconnected`` is a
    :class:`ConnectionResetError` too.
    """


class UnsafeXML(ResponseError):
    """The document has a DTD, an entity declaration or an external reference: refused."""
