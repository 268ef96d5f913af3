"""The password file, SCRAM records, SASLprep and the :mod:`twisted.cred` checker.

One record per user serves PLAIN/LOGIN (the password is verified by recomputing
SCRAM's StoredKey) and SCRAM-SHA-256 (RFC 5802/7677).  The file is text, one
user per line::

    alice SCRAM-SHA-256$100000:<salt>$<StoredKey>:<ServerKey>
    bob SCRAM-SHA-256$100000:<salt>$<StoredKey>:<ServerKey> CRAM-MD5$<base64 password>

plus comments (``#``) and one ``@mock-key <base64>`` line, the secret from
which fake SCRAM salts for unknown users are derived.  The ``CRAM-MD5$`` field
is password-equivalent and present only for users added with ``cram_md5=True``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import getpass
import hashlib
import hmac
import os
import stringprep
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import (
    ICredentials,
    IUsernameHashedPassword,
    IUsernamePassword,
)
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from netproto_twisted.core.errors import ConfigError, NetprotoError
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.threads import Runner, thread_runner

try:  # POSIX advisory locking of concurrent writers; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_PASSWORD_FILE",
    "DEFAULT_SCRAM_ITERATIONS",
    "CramMD5Credentials",
    "IScramCredentials",
    "IScramStore",
    "InvalidPassword",
    "InvalidUserName",
    "NoSuchUser",
    "PasswordFile",
    "PasswordFileChecker",
    "Runner",
    "ScramCredentials",
    "ScramRecord",
    "UserRecord",
    "add_parser",
    "mock_scram_record",
    "normalize_password",
    "saslprep",
    "synchronous_runner",
    "thread_runner",
    "validate_name",
    "validate_password",
]

#: RFC 7677 asks for at least 4096.  100,000 costs ~25 ms of CPU per verification on
#: this project's machines: 25x the RFC floor, yet a login burst cannot pin the CPU
#: the way OWASP's 600,000 (~135 ms) would.  Raise it per file with ``iterations=``.
DEFAULT_SCRAM_ITERATIONS = 100_000
_KEY_LEN = 32
_MAX_NAME_BYTES = 255  # PLAIN's limit for authcid and passwd (RFC 4616)
_CRAM_PREFIX = "CRAM-MD5$"
_MOCK_KEY = "@mock-key"
_HEADER = (
    "# netproto password file: NAME SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
    " [CRAM-MD5$<base64 password>]\n"
    "# Written by `netproto user add`; CRAM-MD5 fields are password-equivalent.\n"
)

log = Logger()


class InvalidUserName(NetprotoError, ValueError):
    """A user name that may not be stored: says why in one line."""


class InvalidPassword(NetprotoError, ValueError):
    """A password that may not be stored: says why in one line."""


class NoSuchUser(NetprotoError, KeyError):
    """The password file has no such user."""

    def __str__(self) -> str:
        return f"no such user: {self.args[0]}"


# -- SASLprep (RFC 4013) ---------------------------------------------------------------------

_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a user name or password with SASLprep (RFC 4013); ValueError if prohibited."""
    if text.isascii() and text.isprintable():  # U+0020..U+007E: RFC 4013 changes or refuses
        return text  # none of it (no mapping, NFKC, prohibition: C.2.1 are controls, or RTL)
    return _saslprep_tables(text, allow_unassigned)


def _saslprep_tables(text: str, allow_unassigned: bool) -> str:
    """SASLprep by the RFC 3454 tables, character by character."""
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in text
                     if not stringprep.in_table_b1(ch))  # fmt: skip
    out = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in out:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character U+{ord(ch):04X}")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError(f"SASLprep: unassigned code point U+{ord(ch):04X}")
    if any(stringprep.in_table_d1(ch) for ch in out):
        if any(stringprep.in_table_d2(ch) for ch in out):
            raise ValueError("SASLprep: mixed right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise ValueError("SASLprep: right-to-left text must start and end with RTL")
    return out


def normalize_password(password: str) -> bytes:
    """RFC 5802 Normalize(): SASLprep as a query string, falling back to the raw text."""
    try:
        prepared = saslprep(password, allow_unassigned=True)
    except ValueError:
        prepared = ""
    return (prepared or password).encode("utf-8", "surrogatepass")


def validate_name(name: str) -> str:
    """Return the stored form of a user name (SASLprepped), or raise InvalidUserName.

    Names are case-sensitive; they may not contain ``:``, whitespace or control
    characters, may not start with ``#`` or ``@``, and are at most 255 UTF-8 bytes.
    """
    try:
        prepared = saslprep(name)
    except ValueError as e:
        raise InvalidUserName(f"invalid user name: {e}") from None
    if not prepared:
        raise InvalidUserName("invalid user name: empty")
    for ch in prepared:
        if ch == ":" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs"):
            raise InvalidUserName(f"invalid user name: character U+{ord(ch):04X} not allowed")
    if prepared[0] in "#@":
        raise InvalidUserName("invalid user name: may not start with '#' or '@'")
    if len(prepared.encode("utf-8")) > _MAX_NAME_BYTES:
        raise InvalidUserName("invalid user name: longer than 255 bytes")
    return prepared


def validate_password(password: str) -> None:
    """Raise InvalidPassword unless *password* can be stored and sent by every mechanism."""
    if not password:
        raise InvalidPassword("empty password")
    if any(ch in password for ch in "\0\r\n"):
        raise InvalidPassword("password contains NUL, CR or LF")
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPassword("password is not valid Unicode text") from None
    if len(encoded) > _MAX_NAME_BYTES:
        raise InvalidPassword("password longer than 255 bytes")


# -- SCRAM records and credentials -----------------------------------------------------------


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stored_key(salted: bytes) -> bytes:
    return hashlib.sha256(_hmac(salted, b"Client Key")).digest()


@dataclass(frozen=True)
class ScramRecord:
    """What a server stores for SCRAM-SHA-256: salt, iterations, StoredKey, ServerKey."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(
        cls,
        password: str,
        *,
        iterations: int = DEFAULT_SCRAM_ITERATIONS,
        salt: bytes | None = None,
    ) -> ScramRecord:
        """Derive a record from a password (PBKDF2: CPU work, keep it off the reactor)."""
        if iterations < 1:
            raise ValueError("iterations must be positive")
        salt = os.urandom(16) if salt is None else salt
        salted = hashlib.pbkdf2_hmac("sha256", normalize_password(password), salt, iterations)
        return cls(iterations, salt, _stored_key(salted), _hmac(salted, b"Server Key"))

    def check_password(self, password: str) -> bool:
        """Tell whether *password* matches, by recomputing StoredKey (PBKDF2: CPU work)."""
        salted = hashlib.pbkdf2_hmac(
            "sha256", normalize_password(password), self.salt, self.iterations
        )
        return hmac.compare_digest(_stored_key(salted), self.stored_key)

    def encode(self) -> str:
        """Serialise as ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` (PostgreSQL's)."""
        return (
            f"SCRAM-SHA-256${self.iterations}:{_b64(self.salt)}"
            f"${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )

    @classmethod
    def parse(cls, text: str) -> ScramRecord:
        """Parse :meth:`encode`'s format; ValueError if it is malformed."""
        try:
            scheme, params, keys = text.split("$")
            iter_text, salt_text = params.split(":")
            stored_text, server_text = keys.split(":")
            iterations = int(iter_text)
            salt, stored, server = (
                base64.b64decode(t, validate=True) for t in (salt_text, stored_text, server_text)
            )
        except (ValueError, binascii.Error):
            raise ValueError("malformed SCRAM-SHA-256 record") from None
        if scheme != "SCRAM-SHA-256" or iterations < 1 or not salt:
            raise ValueError("malformed SCRAM-SHA-256 record")
        if len(stored) != _KEY_LEN or len(server) != _KEY_LEN:
            raise ValueError("malformed SCRAM-SHA-256 record: bad key length")
        return cls(iterations, salt, stored, server)


def mock_scram_record(name: str, key: bytes, iterations: int) -> ScramRecord:
    """Return a deterministic fake record for an unknown user (no proof can match it)."""
    encoded = name.encode("utf-8", "surrogatepass")
    return ScramRecord(
        iterations,
        _hmac(key, b"salt\0" + encoded)[:16],
        _hmac(key, b"stored\0" + encoded),
        _hmac(key, b"server\0" + encoded),
    )


class IScramStore(Interface):
    """Where a SASL server finds SCRAM records (:class:`PasswordFile` provides it)."""

    def scram_record(name: str) -> ScramRecord | None:  # noqa: N805 (zope interface)
        """Return the record of the SASLprepped user *name*, or None if unknown."""

    def mock_scram_record(name: str) -> ScramRecord:  # noqa: N805 (zope interface)
        """Return a fake record for an unknown user, the same every time for a name."""


class IScramCredentials(ICredentials):
    """A SCRAM client proof to be checked against the user's StoredKey."""

    username = Attribute("The SASLprepped authentication identity (str).")

    def check_proof(stored_key: bytes) -> bool:  # noqa: N805 (zope interface)
        """Tell whether the client proof matches *stored_key*."""


@implementer(IScramCredentials)
class ScramCredentials:
    """The proof of a finished SCRAM exchange: checkers call :meth:`check_proof`."""

    def __init__(self, username: str, auth_message: bytes, proof: bytes) -> None:
        self.username = username
        self._auth_message = auth_message
        self._proof = proof

    def check_proof(self, stored_key: bytes) -> bool:
        """Tell whether the client proof matches *stored_key* (constant time)."""
        if len(self._proof) != len(stored_key):
            return False
        signature = _hmac(stored_key, self._auth_message)
        client_key = bytes(a ^ b for a, b in zip(self._proof, signature, strict=True))
        return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


@implementer(IUsernameHashedPassword)
class CramMD5Credentials:
    """A CRAM-MD5 response (RFC 2195), checked against the plaintext secret."""

    def __init__(self, username: bytes, challenge: bytes, response: bytes) -> None:
        self.username = username
        self.challenge = challenge
        self.response = response.lower()

    def checkPassword(self, password: bytes) -> bool:
        """Tell whether the response is HMAC-MD5(password, challenge) (constant time)."""
        expected = hmac.new(password, self.challenge, hashlib.md5).hexdigest().encode()
        return hmac.compare_digest(expected, self.response)


# -- the file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRecord:
    """One user of the password file."""

    name: str
    scram: ScramRecord
    cram_md5_secret: bytes | None = None  # the plaintext password: password-equivalent!

    def encode(self) -> str:
        """Serialise as one line of the file (without the newline)."""
        line = f"{self.name} {self.scram.encode()}"
        if self.cram_md5_secret is not None:
            line += f" {_CRAM_PREFIX}{_b64(self.cram_md5_secret)}"
        return line


def _parse(text: str, where: str) -> tuple[dict[str, UserRecord], bytes | None]:
    users: dict[str, UserRecord] = {}
    mock_key = None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if fields[0] == _MOCK_KEY and len(fields) == 2:
                mock_key = base64.b64decode(fields[1], validate=True)
                continue
            if len(fields) not in (2, 3) or validate_name(fields[0]) != fields[0]:
                raise ValueError("expected NAME SCRAM-SHA-256$... [CRAM-MD5$...]")
            cram = None
            if len(fields) == 3:
                if not fields[2].startswith(_CRAM_PREFIX):
                    raise ValueError("third field must be CRAM-MD5$<base64>")
                cram = base64.b64decode(fields[2][len(_CRAM_PREFIX) :], validate=True)
            if fields[0] in users:
                raise ValueError(f"duplicate user {fields[0]!r}")
            users[fields[0]] = UserRecord(fields[0], ScramRecord.parse(fields[1]), cram)
        except (ValueError, binascii.Error) as e:
            raise ConfigError(f"{where}:{number}", str(e)) from None
    return users, mock_key


@implementer(IScramStore)
class PasswordFile:
    """A password file, reloaded when its mtime/size/inode changes; provides IScramStore.

    Lookups ``stat`` the file (microseconds) and re-read it only when it changed.
    A file that goes bad after a good load keeps the last good contents (and logs).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, iterations: int = DEFAULT_SCRAM_ITERATIONS
    ) -> None:
        self.path = Path(path)
        self.iterations = iterations
        self._users: dict[str, UserRecord] = {}
        self._mock_key: bytes | None = None
        self._generated_key = os.urandom(_KEY_LEN)
        self._mock_iterations = iterations
        self._signature: tuple[int, int, int] | None = None
        self._has_cram = False
        self._refresh(strict=True)

    # reading

    def _refresh(self, *, strict: bool = False) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._signature is not None or strict:
                self._signature = None
                self._load({}, None)
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature and not strict:
            return
        self._signature = signature
        try:
            text = self.path.read_text(encoding="utf-8")
            users, mock_key = _parse(text, str(self.path))
        except (OSError, UnicodeDecodeError, ConfigError) as e:
            if strict:
                raise ConfigError(str(self.path), str(e)) from None
            log.error("password file {path} not reloaded: {error}", path=self.path, error=e)
            return
        self._load(users, mock_key)

    def _load(self, users: dict[str, UserRecord], mock_key: bytes | None) -> None:
        self._users = users
        self._mock_key = mock_key
        self._has_cram = any(u.cram_md5_secret is not None for u in users.values())
        counts = collections.Counter(u.scram.iterations for u in self._users.values())
        self._mock_iterations = counts.most_common(1)[0][0] if counts else self.iterations

    def get(self, name: str) -> UserRecord | None:
        """Return the record of *name* (stored form), or None."""
        self._refresh()
        return self._users.get(name)

    def names(self) -> list[str]:
        """Return the user names, sorted."""
        self._refresh()
        return sorted(self._users)

    def scram_record(self, name: str) -> ScramRecord | None:
        """Return the SCRAM record of *name*, or None if unknown."""
        record = self.get(name)
        return record.scram if record else None

    def mock_scram_record(self, name: str) -> ScramRecord:
        """Return a fake record for an unknown user (stable: the key is kept in the file)."""
        self._refresh()
        key = self._mock_key if self._mock_key is not None else self._generated_key
        return mock_scram_record(name, key, self._mock_iterations)

    def cram_md5_secret(self, name: str) -> bytes | None:
        """Return the CRAM-MD5 secret of *name* if it was added with cram_md5, else None."""
        record = self.get(name)
        return record.cram_md5_secret if record else None

    def has_cram_md5_secrets(self) -> bool:
        """Tell whether any user has a CRAM-MD5 secret (else CRAM-MD5 cannot succeed)."""
        self._refresh()
        return self._has_cram

    # writing (synchronous: an administrator's tool, PBKDF2 included)

    def add(
        self,
        name: str,
        password: str,
        *,
        cram_md5: bool = False,
        iterations: int | None = None,
    ) -> bool:
        """Add *name*, or replace its password; return True if the user is new."""
        stored_name = validate_name(name)
        validate_password(password)
        scram = ScramRecord.from_password(password, iterations=iterations or self.iterations)
        secret = password.encode("utf-8") if cram_md5 else None
        with self._locked():
            new = stored_name not in self._users
            users = dict(self._users)
            users[stored_name] = UserRecord(stored_name, scram, secret)
            self._write(users)
        return new

    def remove(self, name: str) -> None:
        """Remove *name*; raise NoSuchUser if absent."""
        name = validate_name(name)
        with self._locked():
            if name not in self._users:
                raise NoSuchUser(name)
            users = dict(self._users)
            del users[name]
            self._write(users)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh(strict=True)
            yield
        finally:
            os.close(fd)

    def _write(self, users: dict[str, UserRecord]) -> None:
        key = self._mock_key if self._mock_key is not None else self._generated_key
        lines = [_HEADER, f"{_MOCK_KEY} {_b64(key)}\n"]
        lines += [users[n].encode() + "\n" for n in sorted(users)]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, "".join(lines).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._refresh(strict=True)


# -- the checker ----------------------------------------------------------------------------------


def synchronous_runner(function: Callable[[], bool]) -> Deferred[bool]:
    """Run *function* at once (tests and command-line tools only: it blocks)."""
    return maybeDeferred(function)


@implementer(ICredentialsChecker)
class PasswordFileChecker:
    """Check PLAIN/LOGIN, CRAM-MD5 and SCRAM credentials against a :class:`PasswordFile`.

    Unknown users and wrong passwords both fail with UnauthorizedLogin after the
    same work (a mock record is verified).  Avatar ids are UTF-8 user names.
    With a *cache* (:mod:`~netproto_twisted.core.login_cache`), a plain
    password that succeeded moments ago for the same record is accepted
    without another PBKDF2 run; misses and failures always pay it.
    """

    credentialInterfaces = (IScramCredentials, IUsernamePassword, IUsernameHashedPassword)

    def __init__(
        self,
        password_file: PasswordFile,
        runner: Runner,
        *,
        cache: VerifiedPasswordCache | None = None,
    ) -> None:
        self.password_file = password_file
        self._run = runner
        self.cache = cache

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        """Verify *credentials*; fire with the user name (bytes) or fail UnauthorizedLogin."""
        pf = self.password_file
        if IScramCredentials.providedBy(credentials):
            name = str(credentials.username)
            scram = pf.scram_record(name)
            target = scram or pf.mock_scram_record(name)
            ok = credentials.check_proof(target.stored_key)
            return maybeDeferred(self._result, name, ok and scram is not None)
        if IUsernamePassword.providedBy(credentials):
            name, record = self._lookup(credentials.username)
            try:
                password = bytes(credentials.password).decode("utf-8")
            except UnicodeDecodeError:
                password, record = "\0", None
            cache = self.cache
            if record is None:
                target = pf.mock_scram_record(name)
            else:
                target = record.scram
                if cache is not None and cache.matches(name, target.stored_key, password):
                    return maybeDeferred(self._result, name, True)
            d = self._run(lambda: target.check_password(password))
            return d.addCallback(self._verified, name, record, password)
        if IUsernameHashedPassword.providedBy(credentials):
            name, record = self._lookup(credentials.username)
            secret = record.cram_md5_secret if record else None
            ok = credentials.checkPassword(secret if secret is not None else os.urandom(16))
            return maybeDeferred(self._result, name, ok and secret is not None)
        return fail(UnhandledCredentials(f"cannot check {type(credentials).__name__}"))

    def _lookup(self, raw: object) -> tuple[str, UserRecord | None]:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            name = saslprep(text, allow_unassigned=True)
        except (UnicodeDecodeError, ValueError):
            return "", None
        return name, self.password_file.get(name)

    def _verified(
        self, ok: bool, name: str, record: UserRecord | None, password: str
    ) -> bytes | tuple[()]:
        ok = ok and record is not None
        if ok and record is not None and self.cache is not None:
            self.cache.remember(name, record.scram.stored_key, password)
        return self._result(name, ok)

    @staticmethod
    def _result(name: str, ok: bool) -> bytes | tuple[()]:
        if ok:
            return name.encode("utf-8")
        raise UnauthorizedLogin("authentication failed")


# -- `netproto user ...` (registered by netproto_twisted.cli) -----------------------------------

#: Where ``netproto user`` and the daemons look for the password file by default.
DEFAULT_PASSWORD_FILE = os.path.join("netproto-data", "users")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``netproto user add|remove|list`` with the CLI."""
    user = subparsers.add_parser("user", help="manage the password file")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    file_help = f"password file (default: ./{DEFAULT_PASSWORD_FILE})"

    add = actions.add_parser("add", help="add a user, or change a user's password")
    add.add_argument("--file", default=DEFAULT_PASSWORD_FILE, help=file_help)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument(
        "--cram-md5",
        action="store_true",
        help="also store a password-equivalent secret so that CRAM-MD5 works",
    )
    add.add_argument(
        "--iterations",
        type=_iterations,
        default=DEFAULT_SCRAM_ITERATIONS,
        help=f"PBKDF2 iterations (default {DEFAULT_SCRAM_ITERATIONS}, minimum 4096)",
    )
    add.add_argument("name", metavar="NAME")
    add.set_defaults(func=_user_add)

    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("--file", default=DEFAULT_PASSWORD_FILE, help=file_help)
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=_user_remove)

    listing = actions.add_parser("list", help="list the users")
    listing.add_argument("--file", default=DEFAULT_PASSWORD_FILE, help=file_help)
    listing.set_defaults(func=_user_list)


def _iterations(text: str) -> int:
    value = int(text)
    if value < 4096:
        raise argparse.ArgumentTypeError("at least 4096 (RFC 7677)")
    return value


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Password (again): ")
    except EOFError:
        raise InvalidPassword("no password given (use --password-stdin)") from None
    if first != second:
        raise InvalidPassword("the passwords do not match")
    return first


def _user_add(args: argparse.Namespace) -> int:
    name = validate_name(args.name)
    password = _read_password(args.password_stdin).rstrip("\r")
    validate_password(password)
    pf = PasswordFile(args.file, iterations=args.iterations)
    new = pf.add(name, password, cram_md5=args.cram_md5)
    sys.stdout.write(f"{'added' if new else 'changed password of'} user {name}\n")
    return 0


def _existing(path: str) -> PasswordFile:
    if not os.path.exists(path):
        raise ConfigError(path, "no such password file")
    return PasswordFile(path)


def _user_remove(args: argparse.Namespace) -> int:
    name = validate_name(args.name)
    _existing(args.file).remove(name)
    sys.stdout.write(f"removed user {name}\n")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    sys.stdout.writelines(f"{name}\n" for name in _existing(args.file).names())
    return 0
