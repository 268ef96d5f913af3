"""SMTP's wire format, sans-I/O: what is said on the wire and in which order.

Nothing here touches a network or a reactor; the server, the client and the
relay build on it.  The modules behind this face are private:
``_codes`` (reply codes, enhanced status codes, EHLO keywords, verbs),
``_syntax`` (:class:`Reply`, :class:`ReplyParser`, command parsing and
formatting), ``_reply`` (the reply value and the error it becomes),
``_address`` (paths, mailboxes, xtext), ``_params`` (MAIL/RCPT parameters,
the EHLO reply), ``_commands`` (the command table: verbs, states, argument
rules, help), ``_state`` (the session state table), ``_trace`` (the
``Received:`` header) and ``_errors`` (the exceptions, public in
:mod:`netproto_twisted.smtp.errors`).
"""

from __future__ import annotations

from netproto_twisted.smtp.wire import _codes
from netproto_twisted.smtp.wire._address import (
    NULL_SENDER,
    POSTMASTER,
    AddressError,
    canonical_address,
    parse_path,
    quote_local_part,
    split_address,
    xtext_decode,
    xtext_encode,
)
from netproto_twisted.smtp.wire._codes import *  # noqa: F403 (the constants, listed in _codes.__all__)
from netproto_twisted.smtp.wire._commands import COMMANDS, SMTP_COMMANDS
from netproto_twisted.smtp.wire._params import (
    MAX_ENVID,
    MAX_ORCPT,
    Extensions,
    MailFrom,
    RcptTo,
    format_mail_from,
    format_rcpt_to,
    parse_ehlo_reply,
    parse_mail_from,
    parse_rcpt_to,
)
from netproto_twisted.smtp.wire._state import (
    COMMAND_STATES,
    EVENT_ABORT,
    EVENT_AUTH_FAILED,
    EVENT_AUTH_SUCCEEDED,
    EVENT_BDAT_LAST,
    EVENT_CLOSE,
    EVENT_END_OF_DATA,
    TRANSITIONS,
    VALID_COMMANDS,
    Session,
    State,
)
from netproto_twisted.smtp.wire._syntax import (
    DEFAULT_MAX_REPLY_LINE,
    DEFAULT_MAX_REPLY_LINES,
    MAX_COMMAND_LINE,
    MAX_REPLY_LINE,
    MAX_TEXT_LINE,
    Command,
    Reply,
    ReplyParser,
    error_from_reply,
    format_auth,
    format_bdat,
    format_command,
    format_ehlo,
    format_helo,
    parse_auth,
    parse_bdat,
    parse_command,
)
from netproto_twisted.smtp.wire._trace import protocol_name, received_header

__all__ = [
    *_codes.__all__,
    "AddressError",
    "COMMANDS",
    "COMMAND_STATES",
    "Command",
    "DEFAULT_MAX_REPLY_LINE",
    "DEFAULT_MAX_REPLY_LINES",
    "EVENT_ABORT",
    "EVENT_AUTH_FAILED",
    "EVENT_AUTH_SUCCEEDED",
    "EVENT_BDAT_LAST",
    "EVENT_CLOSE",
    "EVENT_END_OF_DATA",
    "Extensions",
    "MAX_COMMAND_LINE",
    "MAX_ENVID",
    "MAX_ORCPT",
    "MAX_REPLY_LINE",
    "MAX_TEXT_LINE",
    "MailFrom",
    "NULL_SENDER",
    "POSTMASTER",
    "RcptTo",
    "Reply",
    "ReplyParser",
    "SMTP_COMMANDS",
    "Session",
    "State",
    "TRANSITIONS",
    "VALID_COMMANDS",
    "canonical_address",
    "error_from_reply",
    "format_auth",
    "format_bdat",
    "format_command",
    "format_ehlo",
    "format_helo",
    "format_mail_from",
    "format_rcpt_to",
    "parse_auth",
    "parse_bdat",
    "parse_command",
    "parse_ehlo_reply",
    "parse_mail_from",
    "parse_path",
    "parse_rcpt_to",
    "protocol_name",
    "quote_local_part",
    "received_header",
    "split_address",
    "xtext_decode",
    "xtext_encode",
]
