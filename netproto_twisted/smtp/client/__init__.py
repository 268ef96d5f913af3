"""The ESMTP client: :func:`send_mail`, :func:`connect_smtp` and :class:`SMTPClient`.

- ``session``: :class:`SMTPClient` (EHLO, STARTTLS, AUTH, one transaction at
  a time), :func:`connect_smtp` and :func:`send_mail`;
- ``transaction``: one mail transaction, pipelined where the server allows
  (:class:`SendResult`);
- ``protocol``: the Twisted side (replies in, commands out);
- ``body``: the message body's checks and encodings for DATA and BDAT (sent
  by :class:`~netproto_twisted.core.streaming.StreamProducer`).
"""

from __future__ import annotations

from netproto_twisted.smtp.client.session import (
    Recipient,
    SMTPClient,
    TLSMode,
    connect_smtp,
    send_mail,
)
from netproto_twisted.smtp.client.transaction import SendResult

__all__ = ["Recipient", "SMTPClient", "SendResult", "TLSMode", "connect_smtp", "send_mail"]
