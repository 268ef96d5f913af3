"""TLS for every protocol: development certificates, server and client contexts, timeouts.

- :func:`ensure_dev_certificate` makes (once) a self-signed certificate for
  ``localhost``, ``127.0.0.1`` and ``::1`` so that every daemon can offer TLS
  out of the box;
- :func:`server_context` loads a certificate chain and key into a
  :class:`~twisted.internet.ssl.CertificateOptions` (TLS >= 1.2), reporting
  every file problem as a one-line :class:`~netproto_twisted.core.errors.ConfigError`;
- :func:`client_options` verifies the peer's certificate and host name unless
  ``verify=False`` is passed explicitly;
- :func:`tls_server_endpoint_args` turns a certificate and key into the
  ``privateKey=...:certKey=...`` fragment of an ``ssl:`` endpoint string;
- :class:`HandshakeTimeout` closes a connection whose TLS handshake stalls.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.tls_alpn import tolerant_alpn

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEV_CERT_NAME",
    "DEV_KEY_NAME",
    "HandshakeTimeout",
    "PathArg",
    "certificate_fingerprint",
    "client_options",
    "ensure_dev_certificate",
    "server_context",
    "tls_server_endpoint_args",
]

_log = Logger()

#: A file-system path as the public functions here accept it.
PathArg = Union[str, "os.PathLike[str]", "FilePath[Any]"]

#: File names of the development certificate and key inside ``<data_dir>/tls/``.
DEV_CERT_NAME = "dev-cert.pem"
DEV_KEY_NAME = "dev-key.pem"

#: Seconds a TLS handshake may take before the connection is closed.
DEFAULT_HANDSHAKE_TIMEOUT = 30.0

_DEV_VALIDITY = datetime.timedelta(days=365)
_DEV_MIN_REMAINING = datetime.timedelta(days=30)
_DEV_BACKDATE = datetime.timedelta(hours=1)
_MIN_TLS = ssl.TLSVersion.TLSv1_2
_SUPPORTED_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


def _as_path(path: PathArg) -> Path:
    """Return ``path`` (str, os.PathLike or FilePath) as a :class:`pathlib.Path`."""
    if isinstance(path, FilePath):
        return Path(os.fsdecode(path.path))
    return Path(path)


# --- development certificate ----------------------------------------------------------


def ensure_dev_certificate(data_dir: PathArg) -> tuple[Path, Path]:
    """Return ``(cert_path, key_path)`` of a self-signed development certificate, making it once.

    The files are ``<data_dir>/tls/dev-cert.pem`` and ``dev-key.pem`` (mode
    0600); the returned paths are absolute.  An existing pair is reused while
    it parses, the key matches and it stays valid for more than 30 days;
    otherwise a new EC P-256 pair valid for a year is written atomically.
    The certificate names ``localhost``, ``127.0.0.1`` and ``::1``.
    """
    tls_dir = _as_path(data_dir).absolute() / "tls"
    try:
        tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(str(tls_dir), f"cannot create directory: {e.strerror or e}") from None
    cert_path = tls_dir / DEV_CERT_NAME
    key_path = tls_dir / DEV_KEY_NAME
    with _locked(tls_dir / ".dev-cert.lock"):
        problem = _dev_pair_problem(cert_path, key_path)
        if problem is None:
            return cert_path, key_path
        _log.info(
            "writing a new development TLS certificate to {path} ({why})",
            path=str(cert_path),
            why=problem,
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(key)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Key first: a reader that sees the new key with the old certificate
        # finds them mismatched and does not use the pair.
        _atomic_write(key_path, key_pem, 0o600)
        _atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _dev_pair_problem(cert_path: Path, key_path: Path) -> str | None:
    """Return why an existing development pair cannot be reused, or ``None`` if it can."""
    if not cert_path.exists() or not key_path.exists():
        return "none present"
    try:
        cert = _load_certificates(cert_path)[0]
        key = _load_private_key(key_path)
    except ConfigError as e:
        return str(e)
    if not _key_matches(key, cert):
        return "key does not match certificate"
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    if remaining <= _DEV_MIN_REMAINING:
        return "expires within 30 days"
    return None


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Return a one-year self-signed server certificate for the loopback names."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netproto_twisted development"),
        ]
    )
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            x509.IPAddress(ipaddress.IPv6Address("::1")),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - _DEV_BACKDATE)
        .not_valid_after(now + _DEV_VALIDITY)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename) with ``mode``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):
        with _suppress_oserror():
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


@contextmanager
def _suppress_oserror() -> Iterator[None]:
    """Ignore :class:`OSError` in cleanup code."""
    with suppress(OSError):
        yield


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- loading files --------------------------------------------------------------------


def _read(path: Path) -> bytes:
    """Return the bytes of ``path``, or raise a one-line :class:`ConfigError` naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except PermissionError:
        raise ConfigError(str(path), "permission denied") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "is a directory, not a file") from None
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror or e}") from None


def _load_certificates(path: Path) -> list[x509.Certificate]:
    """Return every PEM certificate in ``path`` (leaf first), or raise :class:`ConfigError`."""
    data = _read(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(str(path), "no valid PEM certificate found") from None
    return certs


def _load_private_key(path: Path) -> PrivateKeyTypes:
    """Return the PEM private key in ``path``, or raise :class:`ConfigError`."""
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(str(path), "private key is encrypted (not supported)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(str(path), "no valid PEM private key found") from None


def _key_matches(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Return whether ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))


#: A private key type that TLS certificates use here.
_TLSKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, _TLSKey, list[x509.Certificate]]:
    """Load and check a certificate chain and its key: ``(leaf, key, intermediates)``."""
    certs = _load_certificates(cert_path)
    key = _load_private_key(key_path)
    if not isinstance(key, _SUPPORTED_KEYS):
        raise ConfigError(str(key_path), "unsupported private key type")
    if not _key_matches(key, certs[0]):
        raise ConfigError(
            str(key_path), f"private key does not match the certificate in {cert_path}"
        )
    now = datetime.datetime.now(datetime.timezone.utc)
    if certs[0].not_valid_after_utc < now:
        _log.warn(
            "TLS certificate {path} expired on {when}",
            path=str(cert_path),
            when=certs[0].not_valid_after_utc.isoformat(),
        )
    return certs[0], key, certs[1:]


def _identity_options(
    leaf: x509.Certificate, key: _TLSKey, chain: list[x509.Certificate]
) -> dict[str, Any]:
    """Return CertificateOptions keyword arguments for our certificate, key and chain.

    pyOpenSSL takes cryptography objects directly (its own X509/PKey wrappers
    are deprecated there); Twisted passes them through untouched, although its
    annotations still name the old types.
    """
    return {"privateKey": key, "certificate": leaf, "extraCertChain": chain or None}


def certificate_fingerprint(cert_path: PathArg) -> str:
    """Return the SHA-256 fingerprint of the first certificate in a file: ``SHA256:AB:CD:...``."""
    cert = _load_certificates(_as_path(cert_path))[0]
    return "SHA256:" + cert.fingerprint(hashes.SHA256()).hex(":").upper()


# --- server side ----------------------------------------------------------------------


def server_context(
    cert_path: PathArg,
    key_path: PathArg,
    *,
    chain_path: PathArg | None = None,
    alpn: Sequence[bytes] = (),
) -> ssl.CertificateOptions:
    """Return server TLS options (TLS >= 1.2, no compression) for a certificate chain and key.

    ``cert_path`` holds the leaf certificate followed by any intermediates;
    ``chain_path``, if given, holds more intermediates.  A missing, unreadable,
    malformed or mismatched file raises a one-line :class:`ConfigError` naming it.
    ``alpn`` lists the application protocols offered by ALPN, preferred first
    (``[b"h2", b"http/1.1"]`` for HTTPS with HTTP/2).
    """
    cert_file = _as_path(cert_path)
    leaf, key, chain = _load_pair(cert_file, _as_path(key_path))
    if chain_path is not None:
        chain += _load_certificates(_as_path(chain_path))
    options = ssl.CertificateOptions(
        raiseMinimumTo=_MIN_TLS,
        acceptableProtocols=list(alpn) or None,
        **_identity_options(leaf, key, chain),
    )
    try:
        # Build the context now, so that OpenSSL's own complaints surface at
        # configuration time rather than at the first connection.
        context = options.getContext()
    except SSL.Error as e:
        raise ConfigError(str(cert_file), f"OpenSSL refused the certificate/key: {e}") from None
    tolerant_alpn(context, alpn)  # a client offering other names still connects
    return options


def _escape_endpoint_value(value: str) -> str:
    """Escape ``\\``, ``:`` and ``=`` with backslashes for Twisted endpoint strings."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def tls_server_endpoint_args(
    cert_path: PathArg, key_path: PathArg, *, chain_path: PathArg | None = None
) -> str:
    """Return the ``privateKey=...:certKey=...`` fragment of an ``ssl:`` server endpoint string.

    Values are escaped for endpoint syntax.  The ``ssl:`` parser reads only the
    first certificate of ``certKey``; when the certificate file holds
    intermediates too (a "fullchain" file) and no ``chain_path`` is given, the
    same file is also passed as ``extraCertChain`` so that the chain is sent.
    """
    cert_file = _as_path(cert_path)
    parts = [
        "privateKey=" + _escape_endpoint_value(str(_as_path(key_path).absolute())),
        "certKey=" + _escape_endpoint_value(str(cert_file.absolute())),
    ]
    if chain_path is None and len(_load_certificates(cert_file)) > 1:
        chain_path = cert_file
    if chain_path is not None:
        chain = str(_as_path(chain_path).absolute())
        parts.append("extraCertChain=" + _escape_endpoint_value(chain))
    return ":".join(parts)


# --- client side ----------------------------------------------------------------------


#: A client certificate: ``(cert_path, key_path)`` or a loaded PrivateCertificate.
ClientCertArg = tuple[PathArg, PathArg] | ssl.PrivateCertificate | None


def _client_identity(client_cert: ClientCertArg) -> dict[str, Any]:
    """Return CertificateOptions keyword arguments for ``client_cert`` (none if ``None``)."""
    if client_cert is None:
        return {}
    if isinstance(client_cert, ssl.PrivateCertificate):
        leaf = client_cert.original.to_cryptography()
        key = client_cert.privateKey.original.to_cryptography_key()
        if not isinstance(key, _SUPPORTED_KEYS):
            raise ConfigError("client_cert", "unsupported private key type")
        return _identity_options(leaf, key, [])
    cert_path, key_path = client_cert
    return _identity_options(*_load_pair(_as_path(cert_path), _as_path(key_path)))


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedClientCreator:
    """Client connections that send SNI but do not verify the server's certificate."""

    def __init__(self, hostname: str, options: ssl.CertificateOptions) -> None:
        self._options = options
        self._server_name: bytes | None = None
        try:
            ipaddress.ip_address(hostname)
        except ValueError:
            if hostname:
                self._server_name = hostname.encode("idna")

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """Return a new OpenSSL client connection for ``tlsProtocol``."""
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


def client_options(
    hostname: str,
    *,
    verify: bool = True,
    ca_file: PathArg | None = None,
    client_cert: ClientCertArg = None,
) -> IOpenSSLClientConnectionCreator:
    """Return client TLS options that verify the server's certificate and ``hostname``.

    Trust comes from the platform's CA store, or only from the certificates in
    ``ca_file`` when given.  ``verify=False`` turns verification off and must
    be asked for explicitly.  ``client_cert`` is ``(cert_path, key_path)`` or a
    :class:`~twisted.internet.ssl.PrivateCertificate`.
    """
    identity = _client_identity(client_cert)
    if not verify:
        _log.info("TLS certificate verification disabled for {host}", host=hostname)
        return _UnverifiedClientCreator(
            hostname, ssl.CertificateOptions(raiseMinimumTo=_MIN_TLS, **identity)
        )
    trust: Any
    if ca_file is None:
        trust = ssl.platformTrust()
    else:
        trust = ssl.trustRootFromCertificates(
            [
                ssl.Certificate(crypto.X509.from_cryptography(c))
                for c in _load_certificates(_as_path(ca_file))
            ]
        )
    creator: IOpenSSLClientConnectionCreator = ssl.optionsForClientTLS(
        hostname,
        trustRoot=trust,
        extraCertificateOptions={"raiseMinimumTo": _MIN_TLS, **identity},
    )
    return creator


# --- handshake timeout ----------------------------------------------------------------


def _handshake_finished(transport: object) -> bool:
    """Return whether the TLS handshake on ``transport`` has completed, as OpenSSL sees it."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return False
    try:
        handle = get_handle()
    except Exception:
        return False
    # The peer's Finished message is the last one a handshake needs.
    return isinstance(handle, SSL.Connection) and handle.get_peer_finished() is not None


class HandshakeTimeout:
    """Close a connection whose TLS handshake does not complete within ``timeout`` seconds.

    Create it when the handshake starts (at connection time for implicit TLS,
    right after ``startTLS`` for STARTTLS) and call :meth:`completed` from the
    protocol's ``handshakeCompleted`` (:class:`~twisted.internet.interfaces.IHandshakeListener`)
    and :meth:`cancel` from ``connectionLost``.  On expiry the connection is
    aborted (a stalled handshake cannot be closed politely) and ``on_timeout``,
    if given, is called first -- unless OpenSSL says the handshake did finish
    (its completion was not reported, e.g. through a protocol wrapper that
    does not pass ``handshakeCompleted`` on), in which case nothing happens.
    """

    def __init__(
        self,
        clock: IReactorTime,
        transport: ITransport,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        *,
        on_timeout: Callable[[], object] | None = None,
    ) -> None:
        self._transport = transport
        self._on_timeout = on_timeout
        self.timeout = timeout
        self.expired = False
        self._call: IDelayedCall | None = clock.callLater(timeout, self._expire)

    @property
    def active(self) -> bool:
        """Whether the timer is still running."""
        return self._call is not None

    def completed(self) -> None:
        """Note that the handshake completed: stop the timer."""
        self.cancel()

    def cancel(self) -> None:
        """Stop the timer (idempotent)."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _expire(self) -> None:
        """Abort the connection: the handshake took too long."""
        self._call = None
        if _handshake_finished(self._transport):
            # The completion was not reported to us (a protocol wrapper that
            # does not pass handshakeCompleted on): nothing to do.
            return
        self.expired = True
        peer: object
        try:
            peer = self._transport.getPeer()
        except Exception:
            peer = None
        _log.info(
            "TLS handshake with {peer} not completed within {timeout}s; closing",
            peer=peer,
            timeout=self.timeout,
        )
        if self._on_timeout is not None:
            self._on_timeout()
        abort = getattr(self._transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self._transport.loseConnection()
