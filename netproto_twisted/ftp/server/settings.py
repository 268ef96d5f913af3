"""The FTP server's settings (one :class:`FTPSettings` per listener)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FTPSettings"]


@dataclass(frozen=True)
class FTPSettings:
    """Everything that shapes one listening FTP server's behaviour.

    :ivar banner: the text of the 220 greeting.
    :ivar allow_insecure_auth: allow USER/PASS without TLS to loopback peers.
    :ivar require_tls: every login (anonymous too) needs AUTH TLS (or implicit
        TLS), and every data channel ``PROT P``.
    :ivar require_session_reuse: an FTPS data channel must resume the control
        connection's TLS session (refused with 522 otherwise).
    :ivar passive_ports: ``(low, high)`` for passive listeners; ``None``: any free port.
    :ivar masquerade: the IPv4 address a 227 reply names (behind NAT); ``None``:
        the control connection's own address.
    :ivar max_line_length: longest command line, CRLF excluded.
    :ivar max_errors: bad commands before a session is closed.
    :ivar idle_timeout: seconds without a command (outside transfers) before 421.
    :ivar data_timeout: seconds to wait for a data connection, and for a stalled
        one (an upload with no byte received, a download with no byte taken by
        the peer): then 426 and the data connection closed.
    :ivar max_download_rate: bytes per second each session may retrieve
        (RETR), or ``None``: no limit.
    :ivar max_upload_rate: bytes per second each session may store
        (STOR/APPE/STOU), or ``None``: no limit.
    :ivar max_upload_size: the most bytes one upload (STOR/APPE/STOU) may
        carry, or ``None``: no limit; past it the upload fails with 552 and
        nothing is kept (the bytes of an APPE or a REST upload that came
        before the limit stay, as after any broken resumable upload).
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection.
    :ivar command_burst: commands at once before the rate applies.
    :ivar inline_file_ops: the longest, in seconds, a ``stat``, ``open``,
        ``mkdir``, ``rename`` or ``delete`` may take on the reactor thread: such
        calls run there (microseconds on a local disk, cheaper than a thread
        hand-over) until one takes longer; then they go to the thread pool for
        a minute (:class:`~netproto_twisted.core.threads.InlineUnlessSlow`).
        ``None``: always in the thread pool.  Directory listings and file
        contents always go to the thread pool (or ``sendfile``).
    """

    banner: str = "netproto FTP server ready"
    allow_insecure_auth: bool = False
    require_tls: bool = False
    require_session_reuse: bool = True
    passive_ports: tuple[int, int] | None = None
    masquerade: str | None = None
    max_line_length: int = 2048
    max_errors: int = 50
    idle_timeout: float | None = 300.0
    data_timeout: float = 60.0
    max_download_rate: float | None = None
    max_upload_rate: float | None = None
    max_upload_size: int | None = None
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 200
    inline_file_ops: float | None = 0.005
