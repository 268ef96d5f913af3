"""twistd plugin of the POP3 server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_pop3 = ServiceMaker(
    "netproto-pop3",
    "netproto_twisted.pop3.tap",
    "POP3 server (STLS, SASL, UIDL, TOP) over the Maildir the SMTP server delivers into.",
    "netproto-pop3",
)
