"""The SMTP capture server in memory: our client and our server joined without a socket.

:func:`memory_smtp_capture` builds the same server as
:func:`~netproto_twisted.testing.smtp.start_smtp_capture` -- our real ESMTP
server with a capture target -- but listens nowhere: its
:attr:`~MemorySMTPCapture.endpoint` is a
:class:`~netproto_twisted.testing.memory.MemoryEndpoint` that connects a
client to it in memory, on a :class:`~twisted.internet.testing.MemoryReactorClock`.
So a ``SynchronousTestCase`` can send mail with the application's code
(anything that takes an ``endpoint``, as
:func:`~netproto_twisted.smtp.send_mail` does) and look at what arrived,
with no socket, no thread and no real time::

    capture = memory_smtp_capture()
    message = b"Subject: hi\\r\\n\\r\\nhello\\r\\n"
    refused = capture.send_mail("a@example.org", ["b@example.org"], message)
    [mail] = capture.messages

STARTTLS is not offered (there is no TLS in memory); AUTH is, without it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from netproto_twisted.smtp.client import Recipient, send_mail
from netproto_twisted.testing.memory import SERVER_ADDRESS, MemoryEndpoint
from netproto_twisted.testing.smtp import (
    DEFAULT_CAPTURE_MAX_SIZE,
    SMTPCapture,
    _capture_factory,
    _new_capture,
)

__all__ = ["MemorySMTPCapture", "memory_smtp_capture"]


@dataclass
class MemorySMTPCapture(SMTPCapture):
    """A capture server reached through :attr:`endpoint` (see :class:`SMTPCapture`)."""

    #: Connects clients to the capture in memory.
    endpoint: MemoryEndpoint = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def clock(self) -> MemoryReactorClock:
        """The clock the server's timers (and the client's, given it) run on."""
        return self.endpoint.clock

    def send_mail(
        self,
        sender: str,
        recipients: Sequence[Recipient],
        message: Any,
        **options: Any,
    ) -> dict[str, tuple[int, str]]:
        """Send one message with our SMTP client through :attr:`endpoint`; return the refusals.

        Like :func:`~netproto_twisted.smtp.send_mail` (and ``smtplib``'s
        ``sendmail``): the result maps each refused recipient to ``(code,
        text)``; ``options`` are ``send_mail``'s (``tls`` defaults to
        ``"none"``).  Pumps until the client has said QUIT; raises what
        ``send_mail`` fails with.
        """
        options.setdefault("tls", "none")
        d: Deferred[dict[str, tuple[int, str]]] = send_mail(
            self.clock,
            self.host,
            self.port,
            sender,
            recipients,
            message,
            endpoint=self.endpoint,
            **options,
        )
        return self.endpoint.result_of(d)


def memory_smtp_capture(
    clock: MemoryReactorClock | None = None,
    *,
    domains: Collection[str] | None = None,
    auth_users: Mapping[str, str] | None = None,
    require_auth: bool | None = None,
    max_size: int = DEFAULT_CAPTURE_MAX_SIZE,
    hostname: str = "localhost",
) -> MemorySMTPCapture:
    """Build an SMTP capture server reached in memory through its ``endpoint``.

    The options are :func:`~netproto_twisted.testing.smtp.start_smtp_capture`'s
    (without TLS).  :meth:`~SMTPCapture.wait_for_messages` works as there,
    its timeout measured on ``clock``; :meth:`~SMTPCapture.stop` fails
    pending waits.
    """
    clock = MemoryReactorClock() if clock is None else clock
    plain = _new_capture(clock, hostname)
    capture = MemorySMTPCapture(
        host=SERVER_ADDRESS.host,
        port=SERVER_ADDRESS.port,
        messages=plain.messages,
        hostname=hostname,
        tls_certificate=None,
        target=plain.target,
        _reactor=clock,
    )
    factory = _capture_factory(
        capture,
        clock,
        domains=domains,
        tls=False,
        auth_users=auth_users,
        require_auth=require_auth,
        require_tls=False,
        max_size=max_size,
    )
    capture.endpoint = MemoryEndpoint(factory, clock)
    return capture
