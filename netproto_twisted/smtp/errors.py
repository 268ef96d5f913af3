"""SMTP exceptions, with the names :mod:`smtplib` made familiar.

Every exception that stands for a failure reply is a
:class:`SMTPResponseError` and carries ``code`` and ``text`` (and, when it came
from a parsed reply, the :class:`~netproto_twisted.smtp.Reply` as ``reply``).
Its class also follows the code: constructing any of them with a 4xx code
gives an instance that is also a
:class:`~netproto_twisted.core.errors.TemporaryError`, with a 5xx code one
that is also a :class:`~netproto_twisted.core.errors.PermanentError`::

    >>> e = SMTPSenderRefused(550, "5.7.1 no", "a@example.org")
    >>> isinstance(e, SMTPSenderRefused), isinstance(e, PermanentError)
    (True, True)

so ``except PermanentError`` catches every 5xx failure, ``except
TemporaryError`` every 4xx one (the relay retries those), whatever step
produced it.  (Each class has two hidden subclasses, ``<Name>[4xx]`` and
``<Name>[5xx]``, which the constructor picks.)

:class:`CommandError` is the server's side: a command from the peer that
cannot be accepted, carrying the :class:`~netproto_twisted.smtp.Reply` to
send back.
"""

from __future__ import annotations

from netproto_twisted.smtp.wire._errors import (
    CommandError,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSRequired,
)

__all__ = [
    "CommandError",
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPError",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPRecipientsRefused",
    "SMTPResponseError",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPTLSRequired",
]

# Documented, pickled and shown under their public home.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
