"""The Maildir++ mail store shared by SMTP delivery, POP3 and IMAP.

The on-disk format is the one Dovecot, Courier and mutt read (``cur/ new/
tmp/``, ``.Folder`` directories, ``:2,<flags>`` names) with Dovecot's
``dovecot-uidlist`` (UIDs, UIDVALIDITY), ``dovecot-keywords`` and
``subscriptions`` files, so Dovecot can share the tree.  See docs/mailstore.rst.
"""

from __future__ import annotations

from netproto_twisted.mailstore.delivery import (
    Appended,
    AppendWriter,
    DirSyncer,
    MessageWriter,
)
from netproto_twisted.mailstore.errors import (
    InvalidName,
    MailboxExists,
    MailboxLocked,
    MailStoreError,
    NoSuchMailbox,
    NoSuchMessage,
)
from netproto_twisted.mailstore.filenames import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    SEEN,
)
from netproto_twisted.mailstore.folder import (
    FlagMode,
    MaildirFolder,
    MessageInfo,
    Snapshot,
    StoreResult,
)
from netproto_twisted.mailstore.fsops import DotLock, FsOps
from netproto_twisted.mailstore.index import FolderIndex
from netproto_twisted.mailstore.interfaces import (
    IAppendWriter,
    IDeliveryTarget,
    IMailbox,
    IMailStore,
    IMessageWriter,
)
from netproto_twisted.mailstore.maildir import MaildirMailbox, MaildirStore
from netproto_twisted.mailstore.names import INBOX, validate_folder, validate_user

__all__ = [
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "FORWARDED",
    "INBOX",
    "SEEN",
    "AppendWriter",
    "Appended",
    "DirSyncer",
    "DotLock",
    "FlagMode",
    "FolderIndex",
    "FsOps",
    "IAppendWriter",
    "IDeliveryTarget",
    "IMailStore",
    "IMailbox",
    "IMessageWriter",
    "InvalidName",
    "MailStoreError",
    "MailboxExists",
    "MailboxLocked",
    "MaildirFolder",
    "MaildirMailbox",
    "MaildirStore",
    "MessageInfo",
    "MessageWriter",
    "NoSuchMailbox",
    "NoSuchMessage",
    "Snapshot",
    "StoreResult",
    "validate_folder",
    "validate_user",
]
