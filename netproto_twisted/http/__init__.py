"""HTTP on twisted.web: both sides of the stdlib's HTTP modules.

- the client side, an asynchronous urllib with http.client-style
  connections, cookies and robots.txt (:mod:`netproto_twisted.http.client`,
  docs/http_client.rst);
- the server side of http.server, cgi, cgitb, wsgiref and http.cookies
  (:mod:`netproto_twisted.http.server`, docs/http_server.rst).

Every public name of both is re-exported here.
"""

from __future__ import annotations

from netproto_twisted.http.client import *  # noqa: F403
from netproto_twisted.http.client import __all__ as _client_all
from netproto_twisted.http.server import *  # noqa: F403
from netproto_twisted.http.server import __all__ as _server_all

__all__ = [*_client_all, *_server_all]
