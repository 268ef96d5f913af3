"""twistd plugin of the XML-RPC server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_xmlrpc = ServiceMaker(
    "netproto-xmlrpc",
    "netproto_twisted.xmlrpc.tap",
    "XML-RPC server exposing a module's functions or an object (introspection, multicall, docs).",
    "netproto-xmlrpc",
)
