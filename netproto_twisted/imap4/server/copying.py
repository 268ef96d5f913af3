"""IMAP COPY and MOVE (and RENAME of INBOX): messages streamed into another folder."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from netproto_twisted.mailstore.delivery import AppendWriter
from netproto_twisted.mailstore.errors import InvalidName, NoSuchMailbox
from netproto_twisted.mailstore.folder import MessageInfo
from netproto_twisted.mailstore.interfaces import Appended
from netproto_twisted.mailstore.maildir import MaildirMailbox, MaildirStore

__all__ = ["copy_messages"]

_COPY_BLOCK = 64 * 1024


def copy_messages(
    store: MaildirStore, box: MaildirMailbox, user: str, uids: list[int], folder: str
) -> Deferred[list[Appended]]:
    """Copy messages (flags and internal dates kept) into ``folder``; fire with their new UIDs."""
    try:
        if not store.folder_exists(user, folder):
            raise NoSuchMailbox(folder)
    except (NoSuchMailbox, InvalidName, ValueError) as e:
        return _fail(e)
    done: list[Appended] = []

    def one(_: object, remaining: list[int]) -> Deferred[list[Appended]] | list[Appended]:
        if not remaining:
            return done
        uid, rest = remaining[0], remaining[1:]
        info = box.get(uid)
        writer = store.append_message(user, folder, info.flags, info.internal_date)

        def record(appended: Appended) -> Deferred[list[Appended]] | list[Appended]:
            done.append(appended)
            return one(None, rest)

        return Deferred.fromCoroutine(_copy_one(box, info, writer)).addCallback(record)

    return succeed(None).addCallback(one, list(uids))


async def _copy_one(box: MaildirMailbox, info: MessageInfo, writer: AppendWriter) -> Appended:
    """Stream one message into ``writer`` a block at a time (CRLF read, stored with LF)."""
    try:
        f = await box.run(box.target.open_message, info)
        try:
            while block := await box.run(f.read, _COPY_BLOCK):
                wait = writer.write(block)
                if wait is not None:
                    await wait
        finally:
            f.close()
    except BaseException:
        writer.abort()
        raise
    return await writer.commit()


def _fail(e: Exception) -> Deferred[list[Appended]]:
    d: Deferred[list[Appended]] = Deferred()
    d.errback(Failure(e))
    return d
