"""A POP3 server on a loopback port of the real reactor, for tests with real peers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IListeningPort

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.pop3 import MaildirMaildrops, POP3ServerFactory, POP3Settings

reactor: Any = _reactor


class LoopbackServer:
    """Our POP3 server on ``127.0.0.1:<port>`` over ``base``, STLS with a dev certificate."""

    def __init__(
        self,
        directory: str,
        base: str,
        users: PasswordFile,
        *,
        allow_insecure: bool = True,
        tls: bool = True,
        implicit: bool = False,
    ) -> None:
        cert, key = ensure_dev_certificate(Path(directory) / "tls")
        self.cert = cert
        context = server_context(cert, key)
        pool = reactor.getThreadPool()
        authenticator = Authenticator.for_password_file(
            users,
            thread_runner(reactor, pool),
            LoginDelay(reactor, base=0.2, maximum=0.2),
            allow_insecure=allow_insecure,
        )
        runner = thread_block_runner(reactor)
        self.factory = POP3ServerFactory(
            reactor,
            MaildirMaildrops(base, runner, clock=reactor),
            authenticator,
            POP3Settings(hostname="pop.test", allow_insecure_auth=allow_insecure),
            tls=context if tls else None,
            runner=runner,
        )
        if implicit:
            self.port: IListeningPort = reactor.listenSSL(
                0, self.factory, context, interface="127.0.0.1"
            )
        else:
            self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.number: int = self.port.getHost().port

    def stop(self) -> Any:
        return self.port.stopListening()


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
