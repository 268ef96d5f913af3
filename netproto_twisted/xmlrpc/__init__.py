"""XML-RPC: a Deferred client and a twisted.web server with introspection, multicall, HTML docs.

See docs/xmlrpc.rst.
"""

from __future__ import annotations

from netproto_twisted.xmlrpc._wire import (
    MAXINT,
    MININT,
    dump_fault,
    dump_request,
    dump_response,
    dumps,
    loads,
    parse_request,
    parse_response,
)
from netproto_twisted.xmlrpc.client import (
    DirectTransport,
    IPostTransport,
    MultiCall,
    MultiCallResult,
    PoolTransport,
    PostResponse,
    Proxy,
)
from netproto_twisted.xmlrpc.errors import (
    ConnectionLost,
    ConnectionRefused,
    Fault,
    HostNotFound,
    ProtocolError,
    ResponseError,
    TLSError,
    TransportError,
    UnsafeXML,
    XMLRPCError,
    XMLRPCTimeout,
)
from netproto_twisted.xmlrpc.methods import MethodRegistry, blocking
from netproto_twisted.xmlrpc.server import ServerSettings, XMLRPCResource, XMLRPCSite

__all__ = [
    "MAXINT",
    "MININT",
    "ConnectionLost",
    "ConnectionRefused",
    "DirectTransport",
    "Fault",
    "HostNotFound",
    "IPostTransport",
    "MethodRegistry",
    "MultiCall",
    "MultiCallResult",
    "PoolTransport",
    "PostResponse",
    "ProtocolError",
    "Proxy",
    "ResponseError",
    "ServerSettings",
    "TLSError",
    "TransportError",
    "UnsafeXML",
    "XMLRPCError",
    "XMLRPCResource",
    "XMLRPCSite",
    "XMLRPCTimeout",
    "blocking",
    "dump_fault",
    "dump_request",
    "dump_response",
    "dumps",
    "loads",
    "parse_request",
    "parse_response",
]
