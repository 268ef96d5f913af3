"""twistd plugins of netproto_twisted: lazy ServiceMaker declarations only."""

from twisted.application.service import ServiceMaker

netproto = ServiceMaker(
    "netproto",
    "netproto_twisted.tap",
    "Every netproto service at once, from one TOML file or embedded defaults.",
    "netproto",
)
netproto_socket = ServiceMaker(
    "netproto-socket",
    "netproto_twisted.sockserv.tap",
    "Host socketserver-style request handlers (TCP, UDP, Unix, TLS).",
    "netproto-socket",
)
netproto_smtp = ServiceMaker(
    "netproto-smtp",
    "netproto_twisted.smtp.tap",
    "ESMTP server: Maildir delivery, submission with AUTH, relay with a durable queue.",
    "netproto-smtp",
)
