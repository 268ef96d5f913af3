"""The IMAP wire format, sans-I/O: the command parser, the response serialiser and parser."""

from netproto_twisted.imap4.wire.commands import (
    AppendMessage,
    Request,
    append_literal_expected,
    parse_command,
    parse_date_time,
)
from netproto_twisted.imap4.wire.fetchspec import FetchAtt, Section
from netproto_twisted.imap4.wire.mutf7 import mutf7_decode, mutf7_encode
from netproto_twisted.imap4.wire.responses import (
    Address,
    BodyStructure,
    Continuation,
    Envelope,
    ResponseSyntaxError,
    Tagged,
    Untagged,
    Vanished,
    parse_response,
    parse_uid_ranges,
    parse_values,
)
from netproto_twisted.imap4.wire.search import SearchKey
from netproto_twisted.imap4.wire.serialise import Atom, encode, quote, status_line
from netproto_twisted.imap4.wire.tokens import (
    CommandSyntaxError,
    LiteralMarker,
    SequenceSet,
    StreamedLiteral,
    literal_marker,
    parse_sequence_set,
)

__all__ = [
    "Address",
    "AppendMessage",
    "Atom",
    "BodyStructure",
    "CommandSyntaxError",
    "Continuation",
    "Envelope",
    "FetchAtt",
    "LiteralMarker",
    "Request",
    "ResponseSyntaxError",
    "SearchKey",
    "Section",
    "SequenceSet",
    "StreamedLiteral",
    "Tagged",
    "Untagged",
    "Vanished",
    "append_literal_expected",
    "encode",
    "literal_marker",
    "mutf7_decode",
    "mutf7_encode",
    "parse_command",
    "parse_date_time",
    "parse_response",
    "parse_sequence_set",
    "parse_uid_ranges",
    "parse_values",
    "quote",
    "status_line",
]
