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
from netproto_twisted.xmlrpc.errors import (
    Fault,
    ProtocolError,
    ResponseError,
    UnsafeXML,
    XMLRPCError,
)

__all__ = [
    "MAXINT",
    "MININT",
    "Fault",
    "ProtocolError",
    "ResponseError",
    "UnsafeXML",
    "XMLRPCError",
    "dump_fault",
    "dump_request",
    "dump_response",
    "dumps",
    "loads",
    "parse_request",
    "parse_response",
]
