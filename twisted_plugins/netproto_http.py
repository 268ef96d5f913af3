"""twistd plugin of the HTTP server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_http = ServiceMaker(
    "netproto-http",
    "netproto_twisted.http.tap",
    "HTTP/1.1 and HTTP/2 server: static files, CGI, WSGI (http.server, cgi, wsgiref).",
    "netproto-http",
)
