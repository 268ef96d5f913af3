"""Telnet helpers for trial suites: a server with users in a temporary password file.

::

    factory = telnet_server_factory(reactor, {"alice": "secret"}, self.mktemp())
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = await connect_telnet(reactor, "127.0.0.1", port.getHost().port)
    session = ScriptedSession(client, prompt=rb">>> $")
    await session.login(b"alice", b"secret")
    assert await session.run(b"6 * 7") == b"42\\n"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import password_portal
from netproto_twisted.core.passwords import PasswordFile, synchronous_runner
from netproto_twisted.telnet.interfaces import IShellFactory
from netproto_twisted.telnet.server import TelnetServerFactory, TelnetSettings
from netproto_twisted.telnet.shells import PythonShellFactory

__all__ = ["telnet_server_factory"]

#: PBKDF2 rounds for test users: the fewest SCRAM allows, so logins are quick.
TEST_ITERATIONS = 4096


def telnet_server_factory(
    reactor: IReactorTime,
    users: Mapping[str, str],
    directory: str | os.PathLike[str],
    *,
    shell_factory: IShellFactory | None = None,
    settings: TelnetSettings | None = None,
    login_delay: LoginDelay | None = None,
) -> TelnetServerFactory:
    """Return a Telnet server factory whose users are ``users`` (a Python shell by default).

    The password file is written under ``directory`` (created if needed);
    passwords are checked on the reactor thread, which is fine for tests.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    password_file = PasswordFile(path / "users")
    for name, password in users.items():
        password_file.add(name, password, iterations=TEST_ITERATIONS)
    return TelnetServerFactory(
        reactor,
        password_portal(password_file, synchronous_runner),
        shell_factory or PythonShellFactory(),
        settings=settings,
        login_delay=login_delay,
    )
