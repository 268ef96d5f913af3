"""Scripted Telnet sessions for device automation: send a line, wait for the prompt, collect.

::

    session = ScriptedSession(client, prompt=rb"[$#>] $", timeout=10)
    await session.login(b"admin", b"secret")
    output = await session.run(b"show version")      # the text between echo and prompt

Each step fails with :class:`~netproto_twisted.telnet.errors.TelnetTimeout`
(carrying what had arrived) when its prompt does not come in time, so a
trial test that drives a device or a fake fails with the screen it saw.
"""

from __future__ import annotations

import re

from netproto_twisted.telnet.client import TelnetClient
from netproto_twisted.telnet.errors import TelnetTimeout

__all__ = ["DEFAULT_PROMPT", "ScriptedSession"]

#: A shell prompt: ``$``, ``#``, ``>`` or ``%`` and a space at the end of the output so far.
DEFAULT_PROMPT = rb"[$#>%] ?$"


class ScriptedSession:
    """Drive a :class:`TelnetClient` step by step: send, wait for the prompt, collect output.

    :param prompt: the shell prompt, a regular expression matched at the end
        of the output so far (``$`` anchors there).
    :param timeout: seconds each step may take.
    :param newline: what ends a sent line (``b"\\r\\n"``, Telnet's line end).
    """

    def __init__(
        self,
        client: TelnetClient,
        *,
        prompt: bytes | re.Pattern[bytes] = DEFAULT_PROMPT,
        timeout: float = 10.0,
        newline: bytes = b"\r\n",
    ) -> None:
        self.client = client
        self.prompt = prompt if isinstance(prompt, re.Pattern) else re.compile(prompt)
        self.timeout = timeout
        self.newline = newline
        #: Everything the session has seen, for a failing test's message.
        self.transcript = bytearray()

    async def wait_for(
        self, pattern: bytes | re.Pattern[bytes], timeout: float | None = None
    ) -> bytes:
        """Wait until ``pattern`` matches the output; return the output up to its end."""
        limit = self.timeout if timeout is None else timeout
        index, _, text = await self.client.expect([pattern], limit)
        self.transcript += text
        if index < 0:
            raise TelnetTimeout(f"no {pattern!r} within {limit} s; got {text[-200:]!r}", text)
        return text

    async def wait_for_prompt(self, timeout: float | None = None) -> bytes:
        """Wait for the prompt; return the output before the prompt's line."""
        text = await self.wait_for(self.prompt, timeout)
        match = self.prompt.search(text)
        before = text[: match.start()] if match else text
        return before[: before.rfind(b"\n") + 1]

    def send(self, line: bytes) -> None:
        """Send ``line`` and the newline."""
        self.client.write(line + self.newline)

    async def run(self, command: bytes, timeout: float | None = None) -> bytes:
        """Send ``command``, wait for the prompt, return the output without the echo and prompt."""
        self.send(command)
        output = await self.wait_for_prompt(timeout)
        head, sep, rest = output.partition(b"\n")
        if sep and command.strip() and command.strip() in head:
            output = rest  # the echoed command line
        return output.replace(b"\r\n", b"\n").replace(b"\r", b"")

    async def login(
        self,
        user: bytes,
        password: bytes,
        *,
        login_prompt: bytes = rb"(?i)(login|username|user name): ?$",
        password_prompt: bytes = rb"(?i)password: ?$",
    ) -> bytes:
        """Answer the login and password prompts, then wait for the shell prompt."""
        await self.wait_for(login_prompt)
        self.send(user)
        await self.wait_for(password_prompt)
        self.send(password)
        return await self.wait_for_prompt()
