"""telnetlib's calling style for scripts: blocking methods over the Deferred client.

::

    from netproto_twisted.telnet.blocking import Telnet
    with Telnet("127.0.0.1", 2323, timeout=10) as tn:
        tn.read_until(b"login: ")
        tn.write(b"alice\\r\\n")
        print(tn.expect([rb"\\$ "], 5))

A script has no reactor of its own: :class:`Telnet` runs one in a background
thread (``reactor=None``: Twisted's global reactor, started once with no
signal handlers) and calls the :class:`~netproto_twisted.telnet.client.TelnetClient`
there with :func:`~twisted.internet.threads.blockingCallFromThread`.  Do not
use it from code that runs on the reactor thread itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from twisted.internet.threads import blockingCallFromThread

from netproto_twisted.telnet.client import DEFAULT_PORT, TelnetClient, connect_telnet

__all__ = ["Telnet", "background_reactor"]

_lock = threading.Lock()


def background_reactor() -> Any:
    """Return Twisted's global reactor, running it in a daemon thread if it does not run yet."""
    from twisted.internet import reactor as global_reactor  # scripts only: see the module

    with _lock:
        if not global_reactor.running:
            started = threading.Event()
            global_reactor.callWhenRunning(started.set)
            thread = threading.Thread(
                target=global_reactor.run,
                kwargs={"installSignalHandlers": False},
                name="netproto-telnet-reactor",
                daemon=True,
            )
            thread.start()
            started.wait(30)
    return global_reactor


class Telnet:
    """A blocking Telnet client with telnetlib's methods (see the module)."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        timeout: float = 30.0,
        *,
        reactor: Any = None,
        **kwargs: Any,
    ) -> None:
        self.reactor = reactor if reactor is not None else background_reactor()
        self.timeout = timeout
        self.client: TelnetClient = self._call(
            connect_telnet, self.reactor, host, port, timeout=timeout, **kwargs
        )

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return blockingCallFromThread(self.reactor, function, *args, **kwargs)

    def read_until(self, expected: bytes, timeout: float | None = None) -> bytes:
        """Read until ``expected`` or ``timeout``."""
        return self._call(self.client.read_until, expected, timeout)  # type: ignore[no-any-return]

    def expect(
        self, patterns: Sequence[bytes | re.Pattern[bytes]], timeout: float | None = None
    ) -> Any:
        """Return ``(index, match, text)`` as telnetlib's ``expect``."""
        return self._call(self.client.expect, patterns, timeout)

    def read_all(self) -> bytes:
        """Read until the connection closes."""
        return self._call(self.client.read_all)  # type: ignore[no-any-return]

    def read_some(self) -> bytes:
        """Read at least one byte, or ``b""`` at end of file."""
        return self._call(self.client.read_some)  # type: ignore[no-any-return]

    def read_very_eager(self) -> bytes:
        """Return what has arrived, without waiting."""
        return self._call(self.client.read_very_eager)  # type: ignore[no-any-return]

    read_eager = read_very_eager

    def write(self, data: bytes) -> None:
        """Send ``data`` (IAC doubled)."""
        self._call(self.client.write, data)

    def set_debuglevel(self, level: int) -> None:
        """Log the traffic when ``level`` > 0."""
        self.client.set_debuglevel(level)

    def close(self) -> None:
        """Close the connection and wait until it is closed."""
        self._call(self.client.close)

    def __enter__(self) -> Telnet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
