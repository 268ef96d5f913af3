"""A bench peer: aiosmtpd delivering each message durably to a Maildir.

``handle_DATA`` writes the message to ``DIR/tmp``, fsyncs the file, renames
it into ``DIR/new`` and fsyncs that directory before it returns ``250``: the
same promise as netproto-smtp's. The blocking file work runs in the event
loop's default thread pool (``run_in_executor``), as an asyncio server that
does disk I/O should; ``--inline`` does it on the loop instead.

Run: ``python bench/peers/aiosmtpd_maildir.py --maildir DIR [--port 0]``; it
prints ``listening on 127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import time
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MaildirHandler", "deliver", "main"]

_COUNTER = itertools.count(1)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072")


def deliver(maildir: str, data: bytes) -> str:
    """Write ``data`` to ``maildir`` durably (tmp, fsync, rename to new, fsync new)."""
    now = time.time()
    name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_COUNTER)}.{_HOST}"
    tmp = os.path.join(maildir, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(maildir, "new", name))
    dfd = os.open(os.path.join(maildir, "new"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return name


class MaildirHandler:
    """An aiosmtpd handler: every accepted message goes to one Maildir, durably."""

    def __init__(self, maildir: str, inline: bool = False) -> None:
        self.maildir = maildir
        self.inline = inline
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message; say 250 only once it is on disk."""
        data = envelope.original_content or b""
        if self.inline:
            deliver(self.maildir, data)
        else:
            await asyncio.get_running_loop().run_in_executor(None, deliver, self.maildir, data)
        return "250 2.0.0 OK: stored"


async def serve(args: argparse.Namespace) -> None:
    """Listen on 127.0.0.1 and serve until killed."""
    handler = MaildirHandler(args.maildir, inline=args.inline)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, hostname="aiosmtpd.bench", data_size_limit=args.max_size)

    server = await loop.create_server(factory, "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    os.write(1, f"listening on 127.0.0.1:{port}\n".encode())
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-size", type=int, default=35 * 1024 * 1024)
    parser.add_argument("--inline", action="store_true", help="write and fsync on the loop")
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
