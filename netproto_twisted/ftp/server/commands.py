"""The FTP server's command table (RFC 959, 2228, 2389, 2428, 2640, 3659, 4217) and states."""

from __future__ import annotations

import enum
from typing import Any

from netproto_twisted.core.commands import Argument, Command, CommandTable

__all__ = ["FTP_COMMANDS", "State"]


class State(enum.Enum):
    """A control connection's states."""

    #: Before login: USER/PASS, AUTH TLS, FEAT, HELP...
    LOGIN = "login"
    #: Logged in, no transfer running.
    READY = "ready"
    #: A transfer runs: only ABOR, STAT, NOOP and QUIT are taken (RFC 959 section 4.1.3).
    TRANSFER = "transfer"


def _tls_offered(conn: Any) -> str | None:
    return None if conn.tls is not None else "AUTH TLS not available"


def _needs_secure(conn: Any) -> str | None:
    return None if conn.secure else "PBSZ and PROT need TLS first (AUTH TLS)"


_L, _R, _T = State.LOGIN, State.READY, State.TRANSFER
_ANY = {_L, _R}
_REQ, _OPT = Argument.REQUIRED, Argument.OPTIONAL

#: The verbs, declared without handlers (the server binds them); HELP and FEAT come from here.
FTP_COMMANDS: CommandTable[State, Any] = CommandTable(
    [
        Command("USER", _ANY, argument=_REQ, help="<name>: name the user"),
        Command("PASS", {_L}, argument=_OPT, help="<password>: give the password"),
        Command("ACCT", _ANY, argument=_REQ, help="<account>: not needed here"),
        Command("AUTH", {_L}, argument=_REQ, guard=_tls_offered, refused_when_secure=True,
                help="TLS: start TLS on the control connection", capability="AUTH TLS"),
        Command("PBSZ", _ANY, argument=_REQ, guard=_needs_secure,
                help="0: protection buffer size", capability="PBSZ"),
        Command("PROT", _ANY, argument=_REQ, guard=_needs_secure,
                help="C|P: data channel protection", capability="PROT"),
        Command("CCC", _ANY, help="clear the command channel (not offered)"),
        Command("REIN", {_R}, help="log out, keep the connection"),
        Command("QUIT", {_L, _R, _T}, help="end the session"),
        Command("PORT", {_R}, argument=_REQ, help="h1,h2,h3,h4,p1,p2: active mode data address"),
        Command("EPRT", {_R}, argument=_REQ, help="|p|addr|port|: extended active mode",
                capability="EPRT"),
        Command("PASV", {_R}, help="passive mode"),
        Command("EPSV", {_R}, argument=_OPT, help="[ALL|1|2]: extended passive mode",
                capability="EPSV"),
        Command("TYPE", {_R}, argument=_REQ, help="A|I: representation type"),
        Command("STRU", {_R}, argument=_REQ, help="F: file structure"),
        Command("MODE", {_R}, argument=_REQ, help="S: stream mode"),
        Command("RETR", {_R}, argument=_REQ, help="<path>: send a file"),
        Command("STOR", {_R}, argument=_REQ, help="<path>: receive a file"),
        Command("STOU", {_R}, argument=_OPT, help="[<path>]: receive a file under a new name"),
        Command("APPE", {_R}, argument=_REQ, help="<path>: append to a file"),
        Command("ALLO", {_R}, argument=_REQ, help="<size>: allocate (not needed)"),
        Command("REST", {_R}, argument=_REQ, help="<offset>: restart the next transfer there",
                capability="REST STREAM"),
        Command("RNFR", {_R}, argument=_REQ, help="<path>: rename from"),
        Command("RNTO", {_R}, argument=_REQ, help="<path>: rename to"),
        Command("ABOR", {_R, _T}, help="abort the transfer"),
        Command("DELE", {_R}, argument=_REQ, help="<path>: delete a file"),
        Command("RMD", {_R}, argument=_REQ, help="<path>: remove a directory"),
        Command("XRMD", {_R}, argument=_REQ, help="<path>: remove a directory (RFC 775)"),
        Command("MKD", {_R}, argument=_REQ, help="<path>: make a directory"),
        Command("XMKD", {_R}, argument=_REQ, help="<path>: make a directory (RFC 775)"),
        Command("PWD", {_R}, help="print the working directory"),
        Command("XPWD", {_R}, help="print the working directory (RFC 775)"),
        Command("CWD", {_R}, argument=_REQ, help="<path>: change the working directory"),
        Command("XCWD", {_R}, argument=_REQ, help="<path>: change directory (RFC 775)"),
        Command("CDUP", {_R}, help="go to the parent directory"),
        Command("XCUP", {_R}, help="go to the parent directory (RFC 775)"),
        Command("LIST", {_R}, argument=_OPT, help="[<path>]: list a directory (ls -l style)"),
        Command("NLST", {_R}, argument=_OPT, help="[<path>]: list names"),
        Command("MLSD", {_R}, argument=_OPT, help="[<path>]: list with facts (RFC 3659)",
                capability="MLST type*;size*;modify*;perm*;unix.mode*;"),
        Command("MLST", {_R}, argument=_OPT, help="[<path>]: facts about one entry"),
        Command("SIZE", {_R}, argument=_REQ, help="<path>: file size", capability="SIZE"),
        Command("MDTM", {_R}, argument=_REQ, help="<path>: modification time",
                capability="MDTM"),
        Command("MFMT", {_R}, argument=_REQ, help="<time> <path>: set the modification time",
                capability="MFMT"),
        Command("SITE", {_R}, argument=_REQ, help="CHMOD <mode> <path> | HELP"),
        Command("SYST", _ANY, help="the system type"),
        Command("STAT", {_L, _R, _T}, argument=_OPT, help="[<path>]: status, or a listing"),
        Command("HELP", _ANY, argument=_OPT, help="[<verb>]: this help"),
        Command("NOOP", {_L, _R, _T}, help="do nothing"),
        Command("FEAT", _ANY, help="list the extensions (RFC 2389)"),
        Command("OPTS", _ANY, argument=_REQ, help="UTF8 ON | MLST facts: set options",
                capability="UTF8"),
    ],
    unknown_text="command not understood",
    sequence_text="bad sequence of commands",
    argument_forbidden_text="{verb} takes no argument",
    argument_missing_text="{verb} needs an argument",
    auth_text="log in with USER and PASS first",
    secure_text="TLS already active",
)  # fmt: skip

#: What a session may do before login besides the LOGIN-state verbs: none.
LOGIN_VERBS = FTP_COMMANDS.valid_in(State.LOGIN)
