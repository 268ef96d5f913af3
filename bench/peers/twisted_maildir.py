"""A bench peer: Twisted's own ESMTP server (twisted.mail) delivering to a Maildir.

Messages are received by :class:`twisted.mail.maildir.MaildirMessage` (a
file in ``DIR/tmp`` written line by line, renamed into ``DIR/new``), with
one change for durability: at the end of data the file is flushed and
fsync'd, renamed, and ``DIR/new`` fsync'd, in the reactor's thread pool,
before the ``250``. Twisted itself does not fsync.

Run: ``python bench/peers/twisted_maildir.py --maildir DIR [--port 0]``; it
prints ``listening on 127.0.0.1:PORT`` once it accepts connections.
"""

# mypy: disable-error-code="no-untyped-call,no-untyped-def,misc"

from __future__ import annotations

import argparse
import os
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IAddress
from twisted.mail import maildir, smtp
from twisted.mail.interfaces import IMessageDelivery
from zope.interface import implementer

__all__ = ["Delivery", "DurableMaildirMessage", "SMTPFactory", "main"]


class DurableMaildirMessage(maildir.MaildirMessage):
    """``MaildirMessage`` that fsyncs the file and the ``new`` directory before success."""

    def eomReceived(self) -> defer.Deferred[str]:
        """Flush, fsync, rename into new/ and fsync new/ (in a thread); fire with the name."""
        final = f"{self.finalName},S={self.size}"
        fp, tmp = self.fp, self.name
        fp.flush()

        def durable() -> str:
            os.fsync(fp.fileno())
            fp.close()
            os.rename(tmp, final)
            fd = os.open(os.path.dirname(final), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return final

        return threads.deferToThread(durable)


@implementer(IMessageDelivery)
class Delivery:
    """Accept any sender and recipient; every message goes to one Maildir."""

    def __init__(self, root: str) -> None:
        self.root = root

    def receivedHeader(self, helo: tuple[bytes, bytes], origin: Any, recipients: Any) -> bytes:
        """The Received header Twisted's own servers add."""
        date: bytes = smtp.rfc822date()
        return b"Received: from " + helo[0] + b" by twisted.bench; " + date

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        """Any sender."""
        return origin

    def validateTo(self, user: smtp.User) -> Any:
        """Any recipient: a new Maildir message in DIR."""

        def message() -> DurableMaildirMessage:
            name = maildir._generateMaildirName().decode()
            tmp = os.path.join(self.root, "tmp", name)
            final = os.path.join(self.root, "new", name)
            fp = open(tmp, "wb")  # noqa: SIM115 - closed by eomReceived / connectionLost
            return DurableMaildirMessage(str(user.dest).encode(), fp, tmp, final)

        return message


class SMTPFactory(smtp.SMTPFactory):
    """``twisted.mail.smtp.ESMTP`` on every connection, delivering to one Maildir."""

    protocol = smtp.ESMTP

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def buildProtocol(self, addr: IAddress | None) -> smtp.ESMTP:
        """An ESMTP protocol with our delivery."""
        p: smtp.ESMTP = super().buildProtocol(addr)
        p.delivery = Delivery(self.root)
        p.host = b"twisted.bench"
        return p


def main() -> None:
    """Parse the options and serve until killed."""
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    port = reactor.listenTCP(args.port, SMTPFactory(args.maildir), 1024, "127.0.0.1")
    os.write(1, f"listening on 127.0.0.1:{port.getHost().port}\n".encode())  # type: ignore[attr-defined]
    reactor.run()


if __name__ == "__main__":
    main()
