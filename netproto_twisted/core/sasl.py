"""SASL mechanisms shared by SMTP, POP3, IMAP and NNTP: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256.

Transport-neutral: servers run these through the exchange driver of
:mod:`netproto_twisted.core.sasl_exchange`, which adds each protocol's line
syntax, the base64 layer (:func:`decode_response` / :func:`encode_challenge`),
the offer rules and the failed-login penalty.
The server side (:class:`SASLServer`) authenticates through a
:class:`twisted.cred.portal.Portal`; the client side (:func:`client_mechanism`)
computes the responses.  SCRAM follows RFC 5802 and RFC 7677 without channel
binding; strings are prepared with SASLprep (RFC 4013) built on :mod:`stringprep`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.cred.credentials import ICredentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from netproto_twisted.core.errors import NetprotoError, RemoteProtocolError
from netproto_twisted.core.passwords import (
    DEFAULT_SCRAM_ITERATIONS,
    CramMD5Credentials,
    IScramCredentials,
    IScramStore,
    ScramCredentials,
    ScramRecord,
    normalize_password,
    saslprep,
)

__all__ = [
    "CRAM_MD5",
    "DEFAULT_SCRAM_ITERATIONS",
    "LOGIN",
    "MAX_CLIENT_ITERATIONS",
    "MECHANISM_PREFERENCE",
    "PLAIN",
    "PLAINTEXT_MECHANISMS",
    "SCRAM_SHA_256",
    "AuthenticationCancelled",
    "AuthenticationFailed",
    "Challenge",
    "ClientMechanism",
    "CramMD5Credentials",
    "IScramCredentials",
    "IScramStore",
    "LoginPortal",
    "MalformedChallenge",
    "MalformedResponse",
    "MechanismUnavailable",
    "SASLError",
    "SASLServer",
    "ScramCredentials",
    "ScramRecord",
    "ServerVerificationFailed",
    "Success",
    "choose_mechanism",
    "client_mechanism",
    "decode_challenge",
    "decode_response",
    "encode_challenge",
    "encode_response",
    "normalize_password",
    "saslprep",
    "server_mechanisms",
]

PLAIN = "PLAIN"
LOGIN = "LOGIN"
CRAM_MD5 = "CRAM-MD5"
SCRAM_SHA_256 = "SCRAM-SHA-256"
#: Mechanisms that send the password itself (only over TLS, or loopback if allowed).
PLAINTEXT_MECHANISMS = frozenset({PLAIN, LOGIN})
#: Every supported mechanism, strongest first.
MECHANISM_PREFERENCE = (SCRAM_SHA_256, CRAM_MD5, PLAIN, LOGIN)

#: A client refuses a server-announced iteration count above this (~0.25 s of CPU).
MAX_CLIENT_ITERATIONS = 1_000_000
_MAX_PLAIN_FIELD = 255  # RFC 4616: each PLAIN field is at most 255 octets
_SCRAM_KEY_LEN = 32


# -- errors -----------------------------------------------------------------------------------


class SASLError(NetprotoError):
    """Base class of SASL failures."""


class AuthenticationFailed(SASLError):
    """The credentials were refused (unknown user and bad password look the same)."""


class MalformedResponse(SASLError, RemoteProtocolError):
    """The client sent data that does not follow the mechanism's syntax."""


class MalformedChallenge(SASLError, RemoteProtocolError):
    """The server sent a challenge that does not follow the mechanism's syntax."""


class MechanismUnavailable(SASLError):
    """The mechanism (or a feature of it, such as channel binding) is not supported here."""


class AuthenticationCancelled(SASLError):
    """The client cancelled the exchange (sent ``*``)."""


class ServerVerificationFailed(SASLError):
    """SCRAM mutual authentication failed: the server did not prove it knows the key."""


# -- base64 and SASLprep ----------------------------------------------------------------------


def decode_response(line: bytes) -> bytes:
    """Decode a client's base64 SASL line: ``=`` is empty, ``*`` cancels."""
    line = line.strip(b"\r\n \t")
    if line == b"*":
        raise AuthenticationCancelled("authentication cancelled by the client")
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("SASL response is not valid base64") from None


def decode_challenge(line: bytes) -> bytes:
    """Decode a server's base64 SASL challenge (client side)."""
    try:
        return base64.b64decode(line.strip(b"\r\n \t"), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedChallenge("SASL challenge is not valid base64") from None


def encode_challenge(data: bytes) -> bytes:
    """Base64-encode a server challenge (empty data gives an empty line)."""
    return base64.b64encode(data)


def encode_response(data: bytes, *, initial: bool = False) -> bytes:
    """Base64-encode a client response; an empty *initial* response is ``=``."""
    if initial and not data:
        return b"="
    return base64.b64encode(data)


# -- SCRAM keys ---------------------------------------------------------------------------------


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str, error: type[SASLError]) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise error(f"SCRAM: {what} is not valid base64") from None


def _client_key(salted: bytes) -> bytes:
    return _hmac(salted, b"Client Key")


# -- server side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """The server needs another response: send *data* (base64-encode it on the wire)."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """Authenticated: the avatar from the portal, and the final data SCRAM must send."""

    username: str
    interface: Any
    avatar: object
    logout: Callable[[], None]
    final_data: bytes | None = None


def server_mechanisms(
    *,
    secure: bool,
    allow_plaintext_insecure: bool = False,
    peer_is_loopback: bool = False,
    cram_md5: bool = True,
) -> list[str]:
    """List the mechanisms to advertise: PLAIN/LOGIN only over TLS or allowed loopback."""
    plaintext_ok = secure or (allow_plaintext_insecure and peer_is_loopback)
    return [
        name
        for name in MECHANISM_PREFERENCE
        if (plaintext_ok or name not in PLAINTEXT_MECHANISMS) and (cram_md5 or name != CRAM_MD5)
    ]


class LoginPortal(Protocol):
    """What :class:`SASLServer` logs in through: a Portal, or a wrapper around one."""

    def login(self, credentials: ICredentials, mind: object, *interfaces: Any) -> Deferred[Any]:
        """Fire with ``(interface, avatar, logout)`` or fail with UnauthorizedLogin."""


def _default_nonce() -> str:
    return secrets.token_urlsafe(18)


def _default_cram_challenge(hostname: str) -> str:
    return f"<{secrets.randbelow(2**31)}.{int(time.time())}@{hostname}>"


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponse(f"{what} is not UTF-8") from None


_SCRAM_NAME = re.compile(r"(?:[^=,]|=2C|=3D)*")
_SCRAM_ESCAPE = re.compile(r"=(2C|3D)")
_SCRAM_ATTR = re.compile(r"[A-Za-z]=")


def _scram_unescape(name: str, error: type[SASLError]) -> str:
    if not _SCRAM_NAME.fullmatch(name):
        raise error("SCRAM: bad escape in user name")
    return _SCRAM_ESCAPE.sub(lambda m: "," if m.group(1) == "2C" else "=", name)


def _scram_escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _scram_nonce_ok(nonce: str) -> bool:
    return bool(nonce) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in nonce)


class SASLServer:
    """The server side of one SASL exchange (one AUTH command), authenticating via a Portal.

    ``final_as_challenge`` (for SMTP, IMAP4rev1, POP3, whose success reply cannot
    carry data): SCRAM's ``v=`` is returned as a :class:`Challenge` and the
    :class:`Success` follows the client's empty response; otherwise it arrives
    in :attr:`Success.final_data`.
    """

    def __init__(
        self,
        mechanism: str,
        portal: LoginPortal,
        interfaces: Sequence[Any],
        *,
        scram_store: IScramStore | None = None,
        mind: object = None,
        hostname: str = "localhost",
        final_as_challenge: bool = False,
        nonce_factory: Callable[[], str] = _default_nonce,
        cram_challenge_factory: Callable[[], str] | None = None,
    ) -> None:
        name = mechanism.upper()
        if name not in MECHANISM_PREFERENCE:
            raise MechanismUnavailable(f"unsupported SASL mechanism {mechanism!r}")
        if name == SCRAM_SHA_256 and scram_store is None:
            raise MechanismUnavailable("SCRAM-SHA-256 needs a SCRAM store")
        if not interfaces:
            raise ValueError("at least one avatar interface is required")
        self.mechanism = name
        self._portal = portal
        self._interfaces = tuple(interfaces)
        self._store = scram_store
        self._mind = mind
        self._hostname = hostname
        self._final_as_challenge = final_as_challenge
        self._nonce_factory = nonce_factory
        self._cram_challenge_factory = cram_challenge_factory
        self._step: Callable[[bytes], Deferred[Challenge | Success]] | None = None
        self._started = False
        self._pending: Success | None = None
        # SCRAM state
        self._username = ""
        self._gs2_header = b""
        self._nonce = ""
        self._first_bare = ""
        self._server_first = ""
        self._record: ScramRecord | None = None
        self._cram_challenge = b""

    # public API

    def start(self, initial_response: bytes | None) -> Deferred[Challenge | Success]:
        """Begin the exchange, with the client's initial response if it sent one."""
        if self._started:
            return fail(MalformedResponse("SASL exchange already started"))
        self._started = True
        try:
            return self._start(initial_response)
        except SASLError:
            return fail(Failure())

    def _start(self, initial: bytes | None) -> Deferred[Challenge | Success]:
        if self.mechanism == PLAIN:
            if initial is None:
                return self._challenge(self._plain, b"")
            return self._plain(initial)
        if self.mechanism == LOGIN:
            if initial:
                return self._login_user(initial)
            return self._challenge(self._login_user, b"Username:")
        if self.mechanism == CRAM_MD5:
            if initial:
                raise MalformedResponse("CRAM-MD5 takes no initial response")
            factory = self._cram_challenge_factory
            text = factory() if factory else _default_cram_challenge(self._hostname)
            self._cram_challenge = text.encode("ascii")
            return self._challenge(self._cram, self._cram_challenge)
        if initial is None:
            return self._challenge(self._scram_first, b"")
        return self._scram_first(initial)

    def respond(self, data: bytes) -> Deferred[Challenge | Success]:
        """Feed the client's next (decoded) response."""
        step, self._step = self._step, None
        if step is None:
            return fail(MalformedResponse("no SASL response expected now"))
        try:
            return step(data)
        except SASLError:
            return fail(Failure())

    def abort(self) -> None:
        """Cancel the exchange, logging out an avatar obtained but not yet handed over."""
        self._step = None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.logout()

    # plumbing

    def _challenge(
        self, step: Callable[[bytes], Deferred[Challenge | Success]], data: bytes
    ) -> Deferred[Challenge | Success]:
        self._step = step
        return succeed(Challenge(data))

    def _login(
        self, credentials: ICredentials, username: str
    ) -> Deferred[Challenge | Success]:
        d = self._portal.login(credentials, self._mind, *self._interfaces)

        def ok(result: tuple[Any, object, Callable[[], None]]) -> Challenge | Success:
            interface, avatar, logout = result
            return Success(username, interface, avatar, logout)

        def refused(failure: Failure) -> Failure:
            failure.trap(UnauthorizedLogin, UnhandledCredentials)
            return Failure(AuthenticationFailed("authentication failed"))

        return d.addCallbacks(ok, refused)

    # PLAIN and LOGIN

    def _plain(self, data: bytes) -> Deferred[Challenge | Success]:
        parts = data.split(b"\0")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise MalformedResponse("PLAIN response must be authzid NUL authcid NUL password")
        if any(len(p) > _MAX_PLAIN_FIELD for p in parts):
            raise MalformedResponse("PLAIN field longer than 255 octets")
        authzid, authcid, password = (_utf8(p, "PLAIN response") for p in parts)
        if authzid and authzid != authcid:
            return fail(AuthenticationFailed("authorization identity not permitted"))
        return self._password_login(authcid, password)

    def _password_login(self, username: str, password: str) -> Deferred[Challenge | Success]:
        creds = UsernamePassword(username.encode("utf-8"), password.encode("utf-8"))
        return self._login(creds, username)

    def _login_user(self, data: bytes) -> Deferred[Challenge | Success]:
        if not data or len(data) > _MAX_PLAIN_FIELD:
            raise MalformedResponse("LOGIN user name is empty or too long")
        self._username = _utf8(data, "LOGIN user name")
        return self._challenge(self._login_password, b"Password:")

    def _login_password(self, data: bytes) -> Deferred[Challenge | Success]:
        if not data or len(data) > _MAX_PLAIN_FIELD:
            raise MalformedResponse("LOGIN password is empty or too long")
        return self._password_login(self._username, _utf8(data, "LOGIN password"))

    # CRAM-MD5

    def _cram(self, data: bytes) -> Deferred[Challenge | Success]:
        username, _, digest = data.rpartition(b" ")
        if not username or len(digest) != 32:
            raise MalformedResponse("CRAM-MD5 response must be 'user digest'")
        try:
            int(digest, 16)
        except ValueError:
            raise MalformedResponse("CRAM-MD5 digest is not hexadecimal") from None
        name = _utf8(username, "CRAM-MD5 user name")
        creds = CramMD5Credentials(username, self._cram_challenge, digest)
        return self._login(creds, name)

    # SCRAM-SHA-256

    def _scram_first(self, data: bytes) -> Deferred[Challenge | Success]:
        text = _utf8(data, "SCRAM client-first message")
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise MalformedResponse("SCRAM: malformed client-first message")
        cbind, authzid, bare = parts
        if cbind.startswith("p="):
            raise MechanismUnavailable(
                "SCRAM channel binding is not supported (SCRAM-SHA-256-PLUS is not offered)"
            )
        if cbind not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise MalformedResponse("SCRAM: malformed GS2 header")
        attrs = bare.split(",")
        if not all(_SCRAM_ATTR.match(a) for a in attrs):
            raise MalformedResponse("SCRAM: malformed attribute in client-first message")
        if attrs[0].startswith("m="):
            raise MechanismUnavailable("SCRAM: mandatory extension not supported")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise MalformedResponse("SCRAM: client-first message needs n= and r=")
        raw_name = _scram_unescape(attrs[0][2:], MalformedResponse)
        nonce = attrs[1][2:]
        if not _scram_nonce_ok(nonce):
            raise MalformedResponse("SCRAM: bad client nonce")
        try:
            name = saslprep(raw_name, allow_unassigned=True)
        except ValueError:
            name = raw_name  # cannot match a stored name; fails like an unknown user
        if authzid and _scram_unescape(authzid[2:], MalformedResponse) != raw_name:
            return fail(AuthenticationFailed("authorization identity not permitted"))
        assert self._store is not None
        record = self._store.scram_record(name) if name else None
        self._record = record if record is not None else self._store.mock_scram_record(name)
        self._username = name
        self._gs2_header = f"{cbind},{authzid},".encode()
        self._first_bare = bare
        self._nonce = nonce + self._nonce_factory()
        self._server_first = (
            f"r={self._nonce},s={_b64(self._record.salt)},i={self._record.iterations}"
        )
        return self._challenge(self._scram_final, self._server_first.encode("ascii"))

    def _scram_final(self, data: bytes) -> Deferred[Challenge | Success]:
        text = _utf8(data, "SCRAM client-final message")
        without_proof, sep, proof_text = text.rpartition(",p=")
        attrs = without_proof.split(",")
        if not sep or len(attrs) < 2 or not attrs[0].startswith("c="):
            raise MalformedResponse("SCRAM: malformed client-final message")
        if not all(_SCRAM_ATTR.match(a) for a in attrs):
            raise MalformedResponse("SCRAM: malformed client-final message")
        if _unb64(attrs[0][2:], "channel binding", MalformedResponse) != self._gs2_header:
            raise MalformedResponse("SCRAM: channel binding data does not match")
        if attrs[1] != "r=" + self._nonce:
            raise MalformedResponse("SCRAM: nonce mismatch")
        proof = _unb64(proof_text, "proof", MalformedResponse)
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        creds = ScramCredentials(self._username, auth_message, proof)
        assert self._record is not None
        signature = _hmac(self._record.server_key, auth_message)
        final = b"v=" + base64.b64encode(signature)

        def done(result: Challenge | Success) -> Challenge | Success:
            assert isinstance(result, Success)
            success = Success(
                result.username, result.interface, result.avatar, result.logout, final
            )
            if not self._final_as_challenge:
                return success
            self._pending = success
            self._step = self._scram_ack
            return Challenge(final)

        return self._login(creds, self._username).addCallback(done)

    def _scram_ack(self, data: bytes) -> Deferred[Challenge | Success]:
        pending, self._pending = self._pending, None
        assert pending is not None
        if data:
            pending.logout()
            raise MalformedResponse("SCRAM: expected an empty response after v=")
        return succeed(pending)


# -- client side --------------------------------------------------------------------------------


class ClientMechanism(ABC):
    """The client side of one SASL exchange: compute responses to challenges."""

    name: str

    def initial_response(self) -> bytes | None:
        """Return the initial response to send with the AUTH command, or None."""
        return None

    @abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Return the response to a (decoded) server challenge."""

    def verify_final(self, data: bytes) -> None:
        """Check the server's final data (SCRAM's signature); raise if it does not verify."""
        if data:
            raise MalformedChallenge(f"{self.name}: unexpected data with success")


class _PlainClient(ClientMechanism):
    name = PLAIN

    def __init__(self, username: str, password: str, authzid: str) -> None:
        self._message = "\0".join((authzid, username, password)).encode("utf-8")
        self._sent = False

    def initial_response(self) -> bytes:
        self._sent = True
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if self._sent:
            raise MalformedChallenge("PLAIN: unexpected second challenge")
        self._sent = True
        return self._message


class _LoginClient(ClientMechanism):
    name = LOGIN

    def __init__(self, username: str, password: str) -> None:
        self._answers = [username.encode("utf-8"), password.encode("utf-8")]

    def respond(self, challenge: bytes) -> bytes:
        if not self._answers:
            raise MalformedChallenge("LOGIN: unexpected third challenge")
        if b"pass" in challenge.lower() and len(self._answers) == 2:
            self._answers.pop(0)  # server asked for the password first (user sent elsewhere)
        return self._answers.pop(0)


class _CramMD5Client(ClientMechanism):
    name = CRAM_MD5

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode("utf-8")
        self._password = password.encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        digest = hmac.new(self._password, challenge, hashlib.md5).hexdigest().encode()
        return self._username + b" " + digest


class _ScramClient(ClientMechanism):
    name = SCRAM_SHA_256

    def __init__(self, username: str, password: str, authzid: str, nonce: str | None) -> None:
        self._password = password
        self._nonce = nonce if nonce is not None else _default_nonce()
        if not _scram_nonce_ok(self._nonce):
            raise ValueError("SCRAM nonce must be printable ASCII without ','")
        authz = f"a={_scram_escape(authzid)}" if authzid else ""
        self._gs2_header = f"n,{authz},"
        try:
            prepared = saslprep(username, allow_unassigned=True)
        except ValueError:
            prepared = username
        self._first_bare = f"n={_scram_escape(prepared)},r={self._nonce}"
        self._server_signature: bytes | None = None
        self.verified = False

    def initial_response(self) -> bytes:
        return (self._gs2_header + self._first_bare).encode("utf-8")

    def respond(self, challenge: bytes) -> bytes:
        if self._server_signature is None:
            return self._client_final(challenge)
        self.verify_final(challenge)
        return b""

    def _client_final(self, challenge: bytes) -> bytes:
        try:
            server_first = challenge.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedChallenge("SCRAM: server-first message is not ASCII") from None
        attrs = server_first.split(",")
        if attrs and attrs[0].startswith("m="):
            raise MechanismUnavailable("SCRAM: server requires an unknown extension")
        if len(attrs) < 3 or [a[:2] for a in attrs[:3]] != ["r=", "s=", "i="]:
            raise MalformedChallenge("SCRAM: malformed server-first message")
        nonce = attrs[0][2:]
        if not nonce.startswith(self._nonce) or len(nonce) <= len(self._nonce):
            raise MalformedChallenge("SCRAM: server nonce does not extend ours")
        salt = _unb64(attrs[1][2:], "salt", MalformedChallenge)
        try:
            iterations = int(attrs[2][2:])
        except ValueError:
            raise MalformedChallenge("SCRAM: bad iteration count") from None
        if not 1 <= iterations <= MAX_CLIENT_ITERATIONS:
            raise MalformedChallenge(f"SCRAM: iteration count {iterations} out of range")
        password = normalize_password(self._password)
        salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
        client_key = _client_key(salted)
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={_b64(self._gs2_header.encode('utf-8'))},r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify_final(self, data: bytes) -> None:
        if self.verified and not data:
            return
        if self._server_signature is None:
            raise MalformedChallenge("SCRAM: final message before the exchange")
        text = data.decode("ascii", "replace")
        if text.startswith("e="):
            raise AuthenticationFailed(f"SCRAM: server error {text[2:]}")
        if not text.startswith("v="):
            raise MalformedChallenge("SCRAM: malformed server-final message")
        got = _unb64(text[2:].split(",")[0], "server signature", MalformedChallenge)
        if not hmac.compare_digest(got, self._server_signature):
            raise ServerVerificationFailed("SCRAM: the server's signature does not verify")
        self.verified = True


def client_mechanism(
    name: str, username: str, password: str, *, authzid: str = "", nonce: str | None = None
) -> ClientMechanism:
    """Create the client side of mechanism *name* (``nonce`` is for SCRAM tests only)."""
    mech = name.upper()
    if mech == PLAIN:
        return _PlainClient(username, password, authzid)
    if authzid and mech != SCRAM_SHA_256:
        raise MechanismUnavailable(f"{mech} cannot carry an authorization identity")
    if mech == LOGIN:
        return _LoginClient(username, password)
    if mech == CRAM_MD5:
        return _CramMD5Client(username, password)
    if mech == SCRAM_SHA_256:
        return _ScramClient(username, password, authzid, nonce)
    raise MechanismUnavailable(f"unsupported SASL mechanism {name!r}")


def choose_mechanism(
    offered: Iterable[str], secure: bool, *, allow_plaintext_insecure: bool = False
) -> str:
    """Pick the strongest offered mechanism; PLAIN/LOGIN only if secure or allowed."""
    available = {m.upper() for m in offered}
    for name in MECHANISM_PREFERENCE:
        if name not in available:
            continue
        if name in PLAINTEXT_MECHANISMS and not (secure or allow_plaintext_insecure):
            continue
        return name
    raise MechanismUnavailable("no acceptable SASL mechanism offered")
