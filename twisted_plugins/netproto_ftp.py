"""twistd plugin of the FTP server: a lazy ServiceMaker declaration only."""

from twisted.application.service import ServiceMaker

netproto_ftp = ServiceMaker(
    "netproto-ftp",
    "netproto_twisted.ftp.tap",
    "FTP/FTPS server (AUTH TLS, EPSV, MLSD, REST) with virtual users and permissions.",
    "netproto-ftp",
)
