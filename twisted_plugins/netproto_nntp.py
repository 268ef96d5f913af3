"""twistd plugin of the news server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_nntp = ServiceMaker(
    "netproto-nntp",
    "netproto_twisted.nntp.tap",
    "NNTP news server (reader and transit, STARTTLS, AUTHINFO, streaming) with an article store.",
    "netproto-nntp",
)
