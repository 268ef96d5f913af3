"""The FTP server's command handlers other than login, TLS and data setup.

Each handler takes the :class:`~netproto_twisted.ftp.server.connection.FTPConnection`
and the argument; :func:`bind_handlers` attaches them (and the connection's
own) to :data:`~netproto_twisted.ftp.server.commands.FTP_COMMANDS`.  Every
path goes through :func:`~netproto_twisted.ftp.paths.resolve_virtual`
first, and every operation through the user's permission letters.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from netproto_twisted import __version__
from netproto_twisted.core.commands import CommandTable
from netproto_twisted.ftp import _wire as w
from netproto_twisted.ftp._wire import CommandSyntaxError, format_mlsx_facts, format_time_val
from netproto_twisted.ftp.errors import FileSystemError
from netproto_twisted.ftp.interfaces import FileInfo, IFTPFilesystem
from netproto_twisted.ftp.listing import format_list_line
from netproto_twisted.ftp.paths import resolve_virtual
from netproto_twisted.ftp.server.commands import FTP_COMMANDS, State

if TYPE_CHECKING:
    from netproto_twisted.ftp.server.connection import FTPConnection
    from netproto_twisted.ftp.server.data import DataChannel

__all__ = ["bind_handlers"]

_Conn = "FTPConnection"


def _path(conn: FTPConnection, argument: str, letter: str) -> str | None:
    """The virtual path, or None after a 550/553 (bad path, or no permission)."""
    assert conn.user is not None
    if letter and not conn.user.may(letter):
        conn.reply(w.FILE_UNAVAILABLE, "permission denied")
        return None
    try:
        return resolve_virtual(conn.cwd, argument)
    except FileSystemError as e:
        conn.reply(e.code, e.text)
        return None


def _fs(conn: FTPConnection) -> IFTPFilesystem:
    assert conn.fs is not None
    return conn.fs


def _then(conn: FTPConnection, d: Deferred[Any], ok: Callable[[Any], None]) -> None:
    def handle(result: Any) -> None:
        if isinstance(result, Failure):
            conn.fs_failed(result)
        else:
            ok(result)

    conn.wait(d, handle)


def _quote(path: str) -> str:
    return '"' + path.replace('"', '""') + '"'


# -- simple settings ---------------------------------------------------------------------


def do_type(conn: FTPConnection, argument: str) -> None:
    """``TYPE A|I|L 8`` (``A N`` too)."""
    kind = argument.upper().split()
    if kind in (["A"], ["A", "N"]):
        conn.type_ascii = True
        conn.reply(w.OK, "type set to A")
    elif kind in (["I"], ["L", "8"]):
        conn.type_ascii = False
        conn.reply(w.OK, "type set to I")
    else:
        conn.error(w.PARAMETER_NOT_IMPLEMENTED, "type not supported")


def do_stru(conn: FTPConnection, argument: str) -> None:
    """``STRU F`` only."""
    if argument.upper() == "F":
        conn.reply(w.OK, "structure set to F")
    else:
        conn.error(w.PARAMETER_NOT_IMPLEMENTED, "only file structure")


def do_mode(conn: FTPConnection, argument: str) -> None:
    """``MODE S`` only."""
    if argument.upper() == "S":
        conn.reply(w.OK, "mode set to S")
    else:
        conn.error(w.PARAMETER_NOT_IMPLEMENTED, "only stream mode")


def do_allo(conn: FTPConnection, _: str) -> None:
    """``ALLO``: nothing to allocate."""
    conn.reply(w.NOT_IMPLEMENTED_SUPERFLUOUS, "ALLO not needed")


def do_rest(conn: FTPConnection, argument: str) -> None:
    """``REST offset`` (stream mode): the next RETR/STOR starts there."""
    if not argument.isascii() or not argument.isdigit() or len(argument) > 18:
        conn.error(w.ARGUMENT_ERROR, "REST needs a byte offset")
        return
    conn.rest = int(argument)
    conn.reply(w.PENDING_FURTHER, f"restarting at {conn.rest}")


def do_syst(conn: FTPConnection, _: str) -> None:
    """``SYST``."""
    conn.reply(w.SYSTEM_TYPE, "UNIX Type: L8")


def do_noop(conn: FTPConnection, _: str) -> None:
    """``NOOP``."""
    conn.reply(w.OK, "NOOP ok")


def do_feat(conn: FTPConnection, _: str) -> None:
    """``FEAT`` (RFC 2389), from the table's capability keywords."""
    features = [c.capability for c in FTP_COMMANDS if c.capability is not None]
    if conn.tls is None:
        features = [f for f in features if f not in ("AUTH TLS", "PBSZ", "PROT")]
    features.append("TVFS")
    conn.reply(w.SYSTEM_STATUS, ["Features:", *sorted(features), "End"])


def do_opts(conn: FTPConnection, argument: str) -> None:
    """``OPTS UTF8 ON`` and ``OPTS MLST fact;fact;``."""
    name, _, value = argument.partition(" ")
    name = name.upper()
    if name == "UTF8":
        if value.strip().upper() in ("ON", ""):
            conn.reply(w.OK, "always in UTF8 mode")
        else:
            conn.error(w.PARAMETER_NOT_IMPLEMENTED, "UTF8 cannot be turned off")
    elif name == "MLST":
        known = ("type", "size", "modify", "perm", "unix.mode")
        wanted = [f for f in value.lower().split(";") if f in known]
        conn.mlst_facts = wanted
        conn.reply(w.OK, "MLST OPTS " + "".join(f + ";" for f in wanted))
    else:
        conn.error(w.ARGUMENT_ERROR, "unknown option")


def do_help(conn: FTPConnection, argument: str) -> None:
    """``HELP [verb]``, from the command table."""
    if argument:
        text = FTP_COMMANDS.help_for(argument.strip())
        if text is None:
            conn.error(w.ARGUMENT_ERROR, f"unknown command {argument.strip()!r}")
        else:
            conn.reply(w.HELP, f"{argument.strip().upper()} {text}")
        return
    conn.reply(w.HELP, ["The following commands are recognized:",
                        *FTP_COMMANDS.help_lines(), "Help OK"])  # fmt: skip


def do_site(conn: FTPConnection, argument: str) -> None:
    """``SITE HELP`` and ``SITE CHMOD mode path``."""
    sub, _, rest = argument.partition(" ")
    sub = sub.upper()
    if sub == "HELP":
        conn.reply(w.HELP, ["SITE commands:", "CHMOD <octal mode> <path>", "HELP", "End"])
        return
    if sub != "CHMOD":
        conn.error(w.NOT_IMPLEMENTED, "unknown SITE command")
        return
    mode_text, _, target = rest.partition(" ")
    try:
        mode = int(mode_text, 8)
    except ValueError:
        conn.error(w.ARGUMENT_ERROR, "SITE CHMOD needs an octal mode and a path")
        return
    if not target or not 0 <= mode <= 0o7777:
        conn.error(w.ARGUMENT_ERROR, "SITE CHMOD needs an octal mode and a path")
        return
    path = _path(conn, target, "M")
    if path is not None:
        _then(conn, _fs(conn).chmod(path, mode), lambda _: conn.reply(w.OK, "SITE CHMOD ok"))


def do_stat(conn: FTPConnection, argument: str) -> None:
    """``STAT``: the session (or transfer) status; ``STAT path``: a listing on the control."""
    if conn.state is State.TRANSFER:
        channel = conn.channel
        count = channel.bytes_transferred if channel is not None else 0
        conn.reply(w.SYSTEM_STATUS, ["transfer in progress", f"{count} bytes so far", "End"])
        return
    if not argument or conn.user is None:
        lines = [
            f"netproto_twisted {__version__} FTP server status:",
            f"connected from {conn.peer}",
            f"logged in as {conn.user.name}" if conn.user else "not logged in",
            f"TYPE: {'ASCII' if conn.type_ascii else 'BINARY'}; protection: "
            f"{'P' if conn.prot_private else 'C'}; TLS: {'on' if conn.secure else 'off'}",
            "End of status",
        ]
        conn.reply(w.SYSTEM_STATUS, lines)
        return
    path = _path(conn, argument, "l")
    if path is None:
        return
    _then(
        conn,
        _listing(conn, path),
        lambda infos: conn.reply(
            w.DIRECTORY_STATUS, ["status of " + path, *(_list_line(i) for i in infos), "End"]
        ),
    )


# -- directories -------------------------------------------------------------------------


def do_pwd(conn: FTPConnection, _: str) -> None:
    """``PWD``."""
    conn.reply(w.PATH_CREATED, f"{_quote(conn.cwd)} is the current directory")


def do_cwd(conn: FTPConnection, argument: str) -> None:
    """``CWD path``."""
    path = _path(conn, argument, "e")
    if path is None:
        return

    def changed(info: FileInfo) -> None:
        if not info.is_dir:
            conn.reply(w.FILE_UNAVAILABLE, "not a directory")
            return
        conn.cwd = path
        conn.reply(w.FILE_ACTION_OK, f"directory changed to {path}")

    _then(conn, _fs(conn).stat(path), changed)


def do_cdup(conn: FTPConnection, _: str) -> None:
    """``CDUP``."""
    do_cwd(conn, "..")


def do_mkd(conn: FTPConnection, argument: str) -> None:
    """``MKD path``."""
    path = _path(conn, argument, "m")
    if path is not None:
        _then(conn, _fs(conn).mkdir(path),
              lambda _: conn.reply(w.PATH_CREATED, f"{_quote(path)} created"))  # fmt: skip


def do_rmd(conn: FTPConnection, argument: str) -> None:
    """``RMD path``."""
    path = _path(conn, argument, "d")
    if path is not None:
        _then(conn, _fs(conn).rmdir(path),
              lambda _: conn.reply(w.FILE_ACTION_OK, "directory removed"))  # fmt: skip


def do_dele(conn: FTPConnection, argument: str) -> None:
    """``DELE path``."""
    path = _path(conn, argument, "d")
    if path is not None:
        _then(conn, _fs(conn).remove(path),
              lambda _: conn.reply(w.FILE_ACTION_OK, "file removed"))  # fmt: skip


def do_rnfr(conn: FTPConnection, argument: str) -> None:
    """``RNFR path``."""
    path = _path(conn, argument, "f")
    if path is None:
        return

    def exists(_: FileInfo) -> None:
        conn.rename_from = path
        conn.reply(w.PENDING_FURTHER, "ready for RNTO")

    _then(conn, _fs(conn).stat(path), exists)


def do_rnto(conn: FTPConnection, argument: str) -> None:
    """``RNTO path``."""
    source, conn.rename_from = conn.rename_from, None
    if source is None:
        conn.error(w.BAD_SEQUENCE, "RNFR first")
        return
    path = _path(conn, argument, "f")
    if path is not None:
        _then(conn, _fs(conn).rename(source, path),
              lambda _: conn.reply(w.FILE_ACTION_OK, "renamed"))  # fmt: skip


# -- facts -------------------------------------------------------------------------------


def do_size(conn: FTPConnection, argument: str) -> None:
    """``SIZE path``: bytes of a plain file (as stored)."""
    path = _path(conn, argument, "l")
    if path is None:
        return

    def size(info: FileInfo) -> None:
        if info.is_dir:
            conn.reply(w.FILE_UNAVAILABLE, "not a plain file")
        else:
            conn.reply(w.FILE_STATUS, str(info.size))

    _then(conn, _fs(conn).stat(path), size)


def do_mdtm(conn: FTPConnection, argument: str) -> None:
    """``MDTM path``: the modification time, UTC."""
    path = _path(conn, argument, "l")
    if path is not None:
        _then(conn, _fs(conn).stat(path),
              lambda info: conn.reply(w.FILE_STATUS, format_time_val(info.mtime)))  # fmt: skip


def do_mfmt(conn: FTPConnection, argument: str) -> None:
    """``MFMT YYYYMMDDHHMMSS path``."""
    stamp, _, target = argument.partition(" ")
    try:
        mtime = w.parse_time_val(stamp)
    except CommandSyntaxError as e:
        conn.error(w.ARGUMENT_ERROR, str(e))
        return
    if not target:
        conn.error(w.ARGUMENT_ERROR, "MFMT needs a time and a path")
        return
    path = _path(conn, target, "T")
    if path is not None:
        _then(conn, _fs(conn).set_mtime(path, mtime),
              lambda _: conn.reply(w.FILE_STATUS, f"Modify={stamp}; {path}"))  # fmt: skip


def _perm(conn: FTPConnection, info: FileInfo) -> str:
    assert conn.user is not None
    may = conn.user.may
    if info.is_dir:
        letters = "e" * may("e") + "l" * may("l") + "cmp" * may("w") + "d" * may("d")
        letters += "f" * may("f")
    else:
        letters = "r" * may("r") + "aw" * may("w") + "d" * may("d") + "f" * may("f")
    return letters


def _facts(conn: FTPConnection, info: FileInfo, kind: str | None = None) -> dict[str, str]:
    all_facts = {
        "type": kind or ("dir" if info.is_dir else "file"),
        "size": str(info.size),
        "modify": format_time_val(info.mtime),
        "perm": _perm(conn, info),
        "unix.mode": oct(info.mode & 0o7777)[2:].rjust(4, "0"),
    }
    return {k: v for k, v in all_facts.items() if k in conn.mlst_facts}


def do_mlst(conn: FTPConnection, argument: str) -> None:
    """``MLST [path]``: facts of one entry on the control connection."""
    path = _path(conn, argument or ".", "l")
    if path is None:
        return

    def facts(info: FileInfo) -> None:
        line = format_mlsx_facts(_facts(conn, info), path)
        conn.reply(w.FILE_ACTION_OK, [f"Listing {path}", line, "End"])

    _then(conn, _fs(conn).stat(path), facts)


def _listing(conn: FTPConnection, path: str) -> Deferred[list[FileInfo]]:
    fs = _fs(conn)

    def listed(info: FileInfo) -> Deferred[list[FileInfo]] | list[FileInfo]:
        if info.is_dir:
            return fs.list_dir(path)
        return [FileInfo(posixpath.basename(path), False, info.size, info.mtime, info.mode,
                         info.nlink)]  # fmt: skip

    return fs.stat(path).addCallback(listed)


_NOW: list[float] = []


def _list_line(info: FileInfo) -> str:
    return format_list_line(
        info.name, info.mode, info.size, info.mtime, nlink=info.nlink, now=time.time()
    )


def _strip_options(argument: str) -> str:
    """``LIST -la dir`` -> ``dir`` (clients send ls options; they are ignored)."""
    parts = argument.split(" ")
    while parts and parts[0].startswith("-"):
        parts.pop(0)
    return " ".join(parts)


def _send_listing(conn: FTPConnection, argument: str, render: Callable[[list[FileInfo], str],
                  list[str]], *, dirs_only: bool = False) -> None:  # fmt: skip
    path = _path(conn, argument or ".", "l")
    if path is None:
        return

    def got(infos: list[FileInfo]) -> None:
        body = "".join(line + "\r\n" for line in render(infos, path))
        data = body.encode("utf-8", "surrogateescape")

        def send(channel: DataChannel) -> Deferred[int]:
            return channel.send_bytes(data)

        conn.begin_transfer(send)

    if dirs_only:

        def check(info: FileInfo) -> Deferred[list[FileInfo]]:
            if not info.is_dir:
                raise FileSystemError("not a directory", 501)
            return _fs(conn).list_dir(path)

        d = _fs(conn).stat(path).addCallback(check)
    else:
        d = _listing(conn, path)
    _then(conn, d, got)


def do_list(conn: FTPConnection, argument: str) -> None:
    """``LIST [path]``: ``ls -l`` lines on the data connection."""
    _send_listing(conn, _strip_options(argument),
                  lambda infos, _: [_list_line(i) for i in infos])  # fmt: skip


def do_nlst(conn: FTPConnection, argument: str) -> None:
    """``NLST [path]``: names on the data connection."""
    _send_listing(conn, _strip_options(argument), lambda infos, _: [i.name for i in infos])


def do_mlsd(conn: FTPConnection, argument: str) -> None:
    """``MLSD [dir]``: facts lines on the data connection (RFC 3659)."""

    def render(infos: list[FileInfo], path: str) -> list[str]:
        return [format_mlsx_facts(_facts(conn, i), i.name) for i in infos]

    _send_listing(conn, argument, render, dirs_only=True)


# -- file transfers ----------------------------------------------------------------------


def do_retr(conn: FTPConnection, argument: str) -> None:
    """``RETR path``: sendfile on plain TCP in binary mode without a rate limit, else streamed."""
    path = _path(conn, argument, "r")
    if path is None:
        conn.rest = 0
        return
    offset = conn.take_rest()
    ascii = conn.type_ascii

    def opened(source: Any) -> None:
        def send(channel: DataChannel) -> Deferred[int]:
            return channel.send_file(
                source,
                ascii=ascii,
                throttle=conn.throttle("download"),
                stall_timeout=conn.settings.data_timeout,
            )

        def close(ok: bool) -> None:
            source.close()

        conn.begin_transfer(send, cleanup=close)

    _then(conn, _fs(conn).open_read(path, offset), opened)


def _upload(conn: FTPConnection, argument: str, *, append: bool = False,
            unique: bool = False) -> None:  # fmt: skip
    letter = "a" if append else "w"
    path = _path(conn, argument, letter)
    if path is None:
        conn.rest = 0
        return
    offset = 0 if append else conn.take_rest()
    ascii = conn.type_ascii

    def opened(handle: Any) -> None:
        def receive(channel: DataChannel) -> Deferred[int]:
            timeout = conn.settings.data_timeout
            return channel.receive(
                handle,
                ascii=ascii,
                idle_timeout=timeout,
                throttle=conn.throttle("upload"),
                max_bytes=conn.settings.max_upload_size,
            )

        def cleanup(ok: bool) -> Deferred[None]:
            done: Deferred[None] = handle.commit() if ok else handle.discard()
            return done

        text = "transfer complete"
        if unique:
            name = posixpath.basename(getattr(handle, "final", path))
            text = f"transfer complete; stored as {name}"
        conn.begin_transfer(receive, text, cleanup=cleanup)

    d = _fs(conn).open_write(path, offset=offset, append=append, unique=unique)
    _then(conn, d, opened)


def do_stor(conn: FTPConnection, argument: str) -> None:
    """``STOR path``: to a temporary name, renamed when the upload ends well."""
    _upload(conn, argument)


def do_appe(conn: FTPConnection, argument: str) -> None:
    """``APPE path``."""
    _upload(conn, argument, append=True)


def do_stou(conn: FTPConnection, argument: str) -> None:
    """``STOU [name]``: stored under a name not yet taken (the 226 text says which)."""
    _upload(conn, argument or "upload", unique=True)


def bind_handlers(connection_class: Any) -> CommandTable[State, Any]:
    """The command table with every handler attached."""
    c = connection_class
    handlers: dict[str, Any] = {
        "USER": c.do_user, "PASS": c.do_pass, "ACCT": c.do_acct, "AUTH": c.do_auth,
        "PBSZ": c.do_pbsz, "PROT": c.do_prot, "CCC": c.do_ccc, "REIN": c.do_rein,
        "QUIT": c.do_quit, "PORT": c.do_port, "EPRT": c.do_eprt, "PASV": c.do_pasv,
        "EPSV": c.do_epsv, "ABOR": c.do_abor,
        "TYPE": do_type, "STRU": do_stru, "MODE": do_mode, "RETR": do_retr, "STOR": do_stor,
        "STOU": do_stou, "APPE": do_appe, "ALLO": do_allo, "REST": do_rest, "RNFR": do_rnfr,
        "RNTO": do_rnto, "DELE": do_dele, "RMD": do_rmd, "XRMD": do_rmd, "MKD": do_mkd,
        "XMKD": do_mkd, "PWD": do_pwd, "XPWD": do_pwd, "CWD": do_cwd, "XCWD": do_cwd,
        "CDUP": do_cdup, "XCUP": do_cdup, "LIST": do_list, "NLST": do_nlst, "MLSD": do_mlsd,
        "MLST": do_mlst, "SIZE": do_size, "MDTM": do_mdtm, "MFMT": do_mfmt, "SITE": do_site,
        "SYST": do_syst, "STAT": do_stat, "HELP": do_help, "NOOP": do_noop, "FEAT": do_feat,
        "OPTS": do_opts,
    }  # fmt: skip
    return FTP_COMMANDS.bind(handlers)
