"""The peer servers of bench/xmlrpc.py: ``python bench/xmlrpc_servers.py KIND PORT``.

KIND is ``stdlib`` (``SimpleXMLRPCServer``), ``stdlib-threading`` (with
``ThreadingMixIn``) or ``twisted-web`` (``twisted.web.xmlrpc.XMLRPC`` on a
Site without an access log).  Each serves ``add`` and ``structs`` from
bench/xmlrpc_methods.py on 127.0.0.1 and prints ``listening on PORT``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path, and bench/xmlrpc.py
# would shadow the standard library's xmlrpc package, imported in the functions below.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
REPO = _HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import xmlrpc_methods  # noqa: E402


def _stdlib(port: int, threading: bool) -> None:
    import socketserver
    import xmlrpc.server

    class Threading(socketserver.ThreadingMixIn, xmlrpc.server.SimpleXMLRPCServer):
        daemon_threads = True

    cls = Threading if threading else xmlrpc.server.SimpleXMLRPCServer
    server = cls(("127.0.0.1", port), logRequests=False)
    server.request_queue_size = 1024
    server.register_function(xmlrpc_methods.add, "add")
    server.register_function(xmlrpc_methods.structs, "structs")
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


def _twisted_web(port: int) -> None:
    from twisted.internet import reactor
    from twisted.web import server, xmlrpc

    class Methods(xmlrpc.XMLRPC):
        def xmlrpc_add(self, a: int, b: int) -> int:
            return xmlrpc_methods.add(a, b)

        def xmlrpc_structs(self) -> Any:
            return xmlrpc_methods.structs()

    class QuietSite(server.Site):
        def log(self, request: Any) -> None:
            pass

    root = Methods()
    top = server.resource.Resource()
    top.putChild(b"RPC2", root)
    listening = reactor.listenTCP(port, QuietSite(top), backlog=1024, interface="127.0.0.1")
    print(f"listening on {listening.getHost().port}", flush=True)
    reactor.run()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "stdlib":
        _stdlib(port, threading=False)
    elif kind == "stdlib-threading":
        _stdlib(port, threading=True)
    elif kind == "twisted-web":
        _twisted_web(port)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main()
