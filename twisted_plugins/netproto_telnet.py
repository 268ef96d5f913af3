"""twistd plugin of the Telnet server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_telnet = ServiceMaker(
    "netproto-telnet",
    "netproto_twisted.telnet.tap",
    "Telnet server (RFC 1143 negotiation) hosting a Python shell or a PTY program behind a login.",
    "netproto-telnet",
)
