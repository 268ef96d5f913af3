"""Telnet (RFC 854, RFC 1143 negotiation): a Deferred telnetlib and a server hosting shells.

Client: :func:`connect_telnet` gives a :class:`TelnetClient` with telnetlib's
reads (``read_until``, ``expect``, ``read_some``, ``read_all``,
``read_very_eager``), ``write``, ``interact`` and ``set_debuglevel``, all
in linear time; :class:`ScriptedSession` drives a device step by step;
:mod:`netproto_twisted.telnet.blocking` gives scripts telnetlib's blocking
calls.  Server: :class:`TelnetServerFactory` hosts a shell
(:class:`PythonShellFactory`, :class:`PtyShellFactory` or any
:class:`IShellFactory`) behind a twisted.cred login.  The codec and the
option engine (:class:`TelnetSession`) are sans I/O.  See docs/telnet.rst.
"""

from __future__ import annotations

from netproto_twisted.telnet._wire import TelnetParser, encode_text, escape
from netproto_twisted.telnet.client import (
    DEFAULT_PORT,
    TelnetClient,
    TelnetClientFactory,
    connect_telnet,
)
from netproto_twisted.telnet.errors import (
    TelnetConnectionClosed,
    TelnetError,
    TelnetReadBusy,
    TelnetTimeout,
)
from netproto_twisted.telnet.interfaces import IShell, IShellFactory, IShellOutput, TerminalInfo
from netproto_twisted.telnet.negotiation import (
    CLIENT_POLICY,
    SERVER_POLICY,
    OptionPolicy,
    SessionHandler,
    TelnetSession,
)
from netproto_twisted.telnet.script import ScriptedSession
from netproto_twisted.telnet.server import (
    TelnetServerFactory,
    TelnetServerProtocol,
    TelnetSettings,
)
from netproto_twisted.telnet.shells import PtyShellFactory, PythonShellFactory

__all__ = [
    "CLIENT_POLICY",
    "DEFAULT_PORT",
    "SERVER_POLICY",
    "IShell",
    "IShellFactory",
    "IShellOutput",
    "OptionPolicy",
    "PtyShellFactory",
    "PythonShellFactory",
    "ScriptedSession",
    "SessionHandler",
    "TelnetClient",
    "TelnetClientFactory",
    "TelnetConnectionClosed",
    "TelnetError",
    "TelnetParser",
    "TelnetReadBusy",
    "TelnetServerFactory",
    "TelnetServerProtocol",
    "TelnetSession",
    "TelnetSettings",
    "TelnetTimeout",
    "TerminalInfo",
    "connect_telnet",
    "encode_text",
    "escape",
]
