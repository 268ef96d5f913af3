"""The POP3 server: a command table, a sans-I/O session object, a thin Protocol.

- :class:`POP3Connection` (``connection``): one session, sans-I/O: the state,
  every command's handler, RETR/TOP streamed to a consumer;
- :class:`POP3ServerProtocol` and :class:`POP3ServerFactory` (``protocol``):
  the Twisted side, on :class:`~netproto_twisted.core.connection.ConnectionProtocol`;
- ``commands``: :data:`POP3_COMMANDS` and the :class:`State` values;
  ``settings``: :class:`POP3Settings`; ``top``: the ``TOP`` encoder.
"""

from __future__ import annotations

from netproto_twisted.pop3.server.commands import POP3_COMMANDS, State
from netproto_twisted.pop3.server.connection import POP3Connection
from netproto_twisted.pop3.server.protocol import POP3ServerFactory, POP3ServerProtocol
from netproto_twisted.pop3.server.settings import DEFAULT_IDLE_TIMEOUT, POP3Settings
from netproto_twisted.pop3.server.top import TopEncoder

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "POP3_COMMANDS",
    "POP3Connection",
    "POP3ServerFactory",
    "POP3ServerProtocol",
    "POP3Settings",
    "State",
    "TopEncoder",
]
