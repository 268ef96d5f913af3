"""The contracts the IMAP server is built on: the mail store's interfaces.

The server opens folders through :class:`~netproto_twisted.mailstore.interfaces.IMailStore`
and works on :class:`~netproto_twisted.mailstore.interfaces.IMailbox` snapshots; the
Maildir++ implementation (:class:`~netproto_twisted.mailstore.MaildirStore`) is the one
shipped, shared with SMTP delivery and POP3.
"""

from netproto_twisted.mailstore.interfaces import IAppendWriter, IMailbox, IMailStore

__all__ = ["IAppendWriter", "IMailStore", "IMailbox"]
