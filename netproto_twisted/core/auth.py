"""The realm and portal every server authenticates with, over the password file.

:func:`password_portal` is the one factory: a :class:`~twisted.cred.portal.Portal`
whose checker is :class:`~netproto_twisted.core.passwords.PasswordFileChecker`
and whose realm is :class:`UserNameRealm`, which hands out the user name as
the avatar for :class:`IAuthenticated`.  A protocol that needs a richer
avatar (a mailbox, a news account) asks for its own interface from its own
realm; one that only needs to know *who* logged in (SMTP submission) uses
these as they are.

:func:`store_mechanisms` tells which SASL mechanisms a password file can
serve (CRAM-MD5 only when some user has a CRAM-MD5 secret), so that a server
never advertises a mechanism nobody can use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.portal import IRealm, Portal
from zope.interface import Interface, implementer

from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import PasswordFile, PasswordFileChecker, Runner
from netproto_twisted.core.sasl import CRAM_MD5, LOGIN, PLAIN, SCRAM_SHA_256

__all__ = ["IAuthenticated", "UserNameRealm", "password_portal", "store_mechanisms"]


class IAuthenticated(Interface):
    """The avatar interface a server asks the Portal for when the avatar is the user name."""


@implementer(IRealm)
class UserNameRealm:
    """A realm whose avatar for :class:`IAuthenticated` is the user name (``str``)."""

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, object, Callable[[], None]]:
        """Return ``(IAuthenticated, name, logout)``; NotImplementedError for other interfaces."""
        if IAuthenticated not in interfaces:
            raise NotImplementedError("UserNameRealm only provides IAuthenticated")
        name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else str(avatarId)
        return IAuthenticated, name, lambda: None


def password_portal(
    password_file: PasswordFile, runner: Runner, *, cache: VerifiedPasswordCache | None = None
) -> Portal:
    """Return a Portal checking *password_file* (PLAIN/LOGIN, CRAM-MD5, SCRAM), avatar = name.

    *runner* runs PBKDF2 off the reactor thread
    (:func:`~netproto_twisted.core.passwords.thread_runner`); *cache*
    remembers passwords just verified (:mod:`~netproto_twisted.core.login_cache`).
    """
    return Portal(UserNameRealm(), [PasswordFileChecker(password_file, runner, cache=cache)])


def store_mechanisms(password_file: PasswordFile) -> frozenset[str]:
    """Return the SASL mechanisms *password_file* can serve now (it is re-read when it changes).

    Every record serves SCRAM-SHA-256, PLAIN and LOGIN; CRAM-MD5 needs a
    password-equivalent secret, stored only for users added with ``--cram-md5``.
    """
    if password_file.has_cram_md5_secrets():
        return frozenset({SCRAM_SHA_256, CRAM_MD5, PLAIN, LOGIN})
    return frozenset({SCRAM_SHA_256, PLAIN, LOGIN})
