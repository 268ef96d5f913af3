"""twistd plugin of the IMAP server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_imap = ServiceMaker(
    "netproto-imap",
    "netproto_twisted.imap4.tap",
    "IMAP4rev1/rev2 server (IDLE, UIDPLUS, MOVE, SASL-IR) over the Maildir SMTP delivers into.",
    "netproto-imap",
)
