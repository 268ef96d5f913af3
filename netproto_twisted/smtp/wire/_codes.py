"""SMTP constants: reply codes, enhanced status codes, extension keywords, verbs, defaults.

Reply codes follow RFC 5321 section 4.2.3, RFC 4954 (AUTH), RFC 3207
(STARTTLS) and RFC 1870 (SIZE).  Enhanced status codes (RFC 3463, the IANA
registry of RFC 5248) are kept *without* their class digit, as
``"subject.detail"`` strings such as ``"1.1"``: the class (2, 4 or 5) always
follows from the reply code, so :meth:`~netproto_twisted.smtp.Reply.make`
puts the two together (``550`` and :data:`ES_BAD_DEST_MAILBOX` give
``5.1.1``) and they can never disagree.

This module imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = [
    "AUTH",
    "AUTH_CONTINUE",
    "AUTH_ENCRYPTION_REQUIRED",
    "AUTH_FAILED",
    "AUTH_OK",
    "AUTH_PASSWORD_TRANSITION",
    "AUTH_REQUIRED",
    "AUTH_TEMPORARY_FAILURE",
    "AUTH_TOO_WEAK",
    "BAD_SEQUENCE",
    "BDAT",
    "BINARYMIME",
    "CANNOT_VRFY",
    "CHUNKING",
    "CLOSING",
    "DATA",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DSN",
    "EHLO",
    "EIGHTBITMIME",
    "ENHANCEDSTATUSCODES",
    "ES_AUTH_CREDENTIALS_INVALID",
    "ES_AUTH_LINE_TOO_LONG",
    "ES_AUTH_MECHANISM_TOO_WEAK",
    "ES_BAD_DEST_MAILBOX",
    "ES_BAD_DEST_MAILBOX_SYNTAX",
    "ES_BAD_DEST_SYSTEM",
    "ES_BAD_SENDER_MAILBOX_SYNTAX",
    "ES_BAD_SENDER_SYSTEM",
    "ES_CONGESTION",
    "ES_DELIVERY_NOT_AUTHORIZED",
    "ES_DEST_ADDRESS_VALID",
    "ES_ENCRYPTION_NEEDED",
    "ES_ENCRYPTION_REQUIRED_FOR_MECHANISM",
    "ES_INVALID_ARGUMENTS",
    "ES_INVALID_COMMAND",
    "ES_MAILBOX_DISABLED",
    "ES_MAILBOX_FULL",
    "ES_MAIL_SYSTEM_FULL",
    "ES_MESSAGE_TOO_BIG",
    "ES_MESSAGE_TOO_BIG_FOR_POLICY",
    "ES_NON_ASCII_ADDRESS",
    "ES_NOT_ACCEPTING",
    "ES_NOT_CAPABLE",
    "ES_OTHER",
    "ES_OTHER_ADDRESS",
    "ES_OTHER_MAIL_SYSTEM",
    "ES_OTHER_NETWORK",
    "ES_OTHER_PROTOCOL",
    "ES_OTHER_SECURITY",
    "ES_PASSWORD_TRANSITION",
    "ES_SECURITY_FEATURES_NOT_SUPPORTED",
    "ES_SYNTAX_ERROR",
    "ES_TOO_MANY_RECIPIENTS",
    "EXCEEDED_STORAGE",
    "EXPN",
    "EXTENSIONS",
    "HELO",
    "HELP",
    "HELP_MESSAGE",
    "INSUFFICIENT_STORAGE",
    "LOCAL_ERROR",
    "MAIL",
    "MAILBOX_BUSY",
    "MAILBOX_NAME_INVALID",
    "MAILBOX_UNAVAILABLE",
    "NOOP",
    "NOT_IMPLEMENTED",
    "OK",
    "PARAMS_NOT_RECOGNIZED",
    "PARAMS_TEMPORARILY_UNAVAILABLE",
    "PARAM_NOT_IMPLEMENTED",
    "PARAM_SYNTAX",
    "PIPELINING",
    "QUIT",
    "RCPT",
    "RSET",
    "SERVICE_READY",
    "SERVICE_UNAVAILABLE",
    "SIZE",
    "SMTPUTF8",
    "STARTTLS",
    "START_INPUT",
    "SYNTAX_ERROR",
    "SYSTEM_STATUS",
    "TRANSACTION_FAILED",
    "USER_NOT_LOCAL",
    "USER_NOT_LOCAL_WILL_FORWARD",
    "VRFY",
]

# -- reply codes (RFC 5321 4.2.3 and extensions) -------------------------------------------

#: 211 System status, or system help reply.
SYSTEM_STATUS = 211
#: 214 Help message.
HELP_MESSAGE = 214
#: 220 <domain> Service ready (the greeting; also the reply to STARTTLS).
SERVICE_READY = 220
#: 221 <domain> Service closing transmission channel (reply to QUIT).
CLOSING = 221
#: 235 Authentication successful (RFC 4954).
AUTH_OK = 235
#: 250 Requested mail action okay, completed.
OK = 250
#: 251 User not local; will forward.
USER_NOT_LOCAL_WILL_FORWARD = 251
#: 252 Cannot VRFY user, but will accept message and attempt delivery.
CANNOT_VRFY = 252
#: 334 Server challenge in an AUTH exchange (RFC 4954).
AUTH_CONTINUE = 334
#: 354 Start mail input; end with <CRLF>.<CRLF>.
START_INPUT = 354
#: 421 Service not available, closing transmission channel.
SERVICE_UNAVAILABLE = 421
#: 432 A password transition is needed (RFC 4954).
AUTH_PASSWORD_TRANSITION = 432
#: 450 Mailbox unavailable (busy, or temporarily blocked for policy reasons).
MAILBOX_BUSY = 450
#: 451 Requested action aborted: local error in processing.
LOCAL_ERROR = 451
#: 452 Insufficient system storage (also: too many recipients).
INSUFFICIENT_STORAGE = 452
#: 454 Temporary authentication failure (RFC 4954); TLS not available (RFC 3207).
AUTH_TEMPORARY_FAILURE = 454
#: 455 Server unable to accommodate parameters.
PARAMS_TEMPORARILY_UNAVAILABLE = 455
#: 500 Syntax error, command unrecognized (also: command line too long).
SYNTAX_ERROR = 500
#: 501 Syntax error in parameters or arguments.
PARAM_SYNTAX = 501
#: 502 Command not implemented.
NOT_IMPLEMENTED = 502
#: 503 Bad sequence of commands.
BAD_SEQUENCE = 503
#: 504 Command parameter not implemented (e.g. an unknown AUTH mechanism).
PARAM_NOT_IMPLEMENTED = 504
#: 530 Authentication required (RFC 4954); must issue STARTTLS first (RFC 3207).
AUTH_REQUIRED = 530
#: 534 Authentication mechanism is too weak (RFC 4954).
AUTH_TOO_WEAK = 534
#: 535 Authentication credentials invalid (RFC 4954).
AUTH_FAILED = 535
#: 538 Encryption required for requested authentication mechanism (RFC 4954).
AUTH_ENCRYPTION_REQUIRED = 538
#: 550 Mailbox unavailable (not found, no access, or refused for policy reasons).
MAILBOX_UNAVAILABLE = 550
#: 551 User not local; please try <forward-path>.
USER_NOT_LOCAL = 551
#: 552 Exceeded storage allocation (also: message size exceeds the limit, RFC 1870).
EXCEEDED_STORAGE = 552
#: 553 Mailbox name not allowed (e.g. mailbox syntax incorrect).
MAILBOX_NAME_INVALID = 553
#: 554 Transaction failed (or, as a greeting: no SMTP service here).
TRANSACTION_FAILED = 554
#: 555 MAIL FROM/RCPT TO parameters not recognized or not implemented.
PARAMS_NOT_RECOGNIZED = 555

# -- enhanced status codes, without the class digit (RFC 3463, RFC 5248 registry) ----------

#: X.0.0 Other undefined status.
ES_OTHER = "0.0"
#: X.1.0 Other address status (the usual success detail of MAIL FROM).
ES_OTHER_ADDRESS = "1.0"
#: X.1.1 Bad destination mailbox address (no such user).
ES_BAD_DEST_MAILBOX = "1.1"
#: X.1.2 Bad destination system address (unknown or unroutable domain).
ES_BAD_DEST_SYSTEM = "1.2"
#: X.1.3 Bad destination mailbox address syntax.
ES_BAD_DEST_MAILBOX_SYNTAX = "1.3"
#: X.1.5 Destination address valid (the usual success detail of RCPT TO).
ES_DEST_ADDRESS_VALID = "1.5"
#: X.1.7 Bad sender's mailbox address syntax.
ES_BAD_SENDER_MAILBOX_SYNTAX = "1.7"
#: X.1.8 Bad sender's system address.
ES_BAD_SENDER_SYSTEM = "1.8"
#: X.2.1 Mailbox disabled, not accepting messages.
ES_MAILBOX_DISABLED = "2.1"
#: X.2.2 Mailbox full.
ES_MAILBOX_FULL = "2.2"
#: X.2.3 Message length exceeds administrative limit.
ES_MESSAGE_TOO_BIG_FOR_POLICY = "2.3"
#: X.3.0 Other or undefined mail system status.
ES_OTHER_MAIL_SYSTEM = "3.0"
#: X.3.1 Mail system full.
ES_MAIL_SYSTEM_FULL = "3.1"
#: X.3.2 System not accepting network messages.
ES_NOT_ACCEPTING = "3.2"
#: X.3.3 System not capable of selected features.
ES_NOT_CAPABLE = "3.3"
#: X.3.4 Message too big for system (RFC 1870 SIZE).
ES_MESSAGE_TOO_BIG = "3.4"
#: X.4.0 Other or undefined network or routing status.
ES_OTHER_NETWORK = "4.0"
#: X.4.5 Mail system congestion.
ES_CONGESTION = "4.5"
#: X.5.0 Other or undefined protocol status.
ES_OTHER_PROTOCOL = "5.0"
#: X.5.1 Invalid command (also: bad sequence of commands).
ES_INVALID_COMMAND = "5.1"
#: X.5.2 Syntax error.
ES_SYNTAX_ERROR = "5.2"
#: X.5.3 Too many recipients.
ES_TOO_MANY_RECIPIENTS = "5.3"
#: X.5.4 Invalid command arguments (also: unknown or duplicate parameters).
ES_INVALID_ARGUMENTS = "5.4"
#: X.5.6 Authentication exchange line is too long (RFC 4954).
ES_AUTH_LINE_TOO_LONG = "5.6"
#: X.6.7 Non-ASCII addresses not permitted for that sender/recipient (RFC 6531).
ES_NON_ASCII_ADDRESS = "6.7"
#: X.7.0 Other or undefined security status (also: must issue STARTTLS first).
ES_OTHER_SECURITY = "7.0"
#: X.7.1 Delivery not authorized, message refused (relaying denied).
ES_DELIVERY_NOT_AUTHORIZED = "7.1"
#: X.7.4 Security features not supported.
ES_SECURITY_FEATURES_NOT_SUPPORTED = "7.4"
#: X.7.8 Authentication credentials invalid (RFC 4954).
ES_AUTH_CREDENTIALS_INVALID = "7.8"
#: X.7.9 Authentication mechanism is too weak (RFC 4954).
ES_AUTH_MECHANISM_TOO_WEAK = "7.9"
#: X.7.10 Encryption needed (RFC 5248).
ES_ENCRYPTION_NEEDED = "7.10"
#: X.7.11 Encryption required for requested authentication mechanism (RFC 4954).
ES_ENCRYPTION_REQUIRED_FOR_MECHANISM = "7.11"
#: X.7.12 A password transition is needed (RFC 4954).
ES_PASSWORD_TRANSITION = "7.12"  # noqa: S105 (a status code)

# -- EHLO keywords -----------------------------------------------------------------------------

#: RFC 2920 command pipelining.
PIPELINING = "PIPELINING"
#: RFC 6152 8-bit MIME transport (``BODY=8BITMIME``); the name cannot start with a digit.
EIGHTBITMIME = "8BITMIME"
#: RFC 6531 internationalised email (UTF-8 addresses and headers).
SMTPUTF8 = "SMTPUTF8"
#: RFC 1870 message size declaration (``SIZE=n``).
SIZE = "SIZE"
#: RFC 3030 BDAT.
CHUNKING = "CHUNKING"
#: RFC 3030 binary MIME (``BODY=BINARYMIME``; needs CHUNKING).
BINARYMIME = "BINARYMIME"
#: RFC 3461 delivery status notifications (RET, ENVID, NOTIFY, ORCPT).
DSN = "DSN"
#: RFC 3207 STARTTLS.
STARTTLS = "STARTTLS"
#: RFC 4954 AUTH (also the ``AUTH=`` MAIL parameter).
AUTH = "AUTH"
#: RFC 2034 enhanced status codes in replies.
ENHANCEDSTATUSCODES = "ENHANCEDSTATUSCODES"

#: Every EHLO keyword this package understands.
EXTENSIONS = frozenset(
    {
        PIPELINING,
        EIGHTBITMIME,
        SMTPUTF8,
        SIZE,
        CHUNKING,
        BINARYMIME,
        DSN,
        STARTTLS,
        AUTH,
        ENHANCEDSTATUSCODES,
    }
)

# -- command verbs -----------------------------------------------------------------------------

EHLO = "EHLO"
HELO = "HELO"
MAIL = "MAIL"
RCPT = "RCPT"
DATA = "DATA"
BDAT = "BDAT"
RSET = "RSET"
NOOP = "NOOP"
QUIT = "QUIT"
VRFY = "VRFY"
EXPN = "EXPN"
HELP = "HELP"
# STARTTLS and AUTH are both verbs and EHLO keywords (same strings, defined above).

# The verbs' states, argument rules and help: the command table in ``_commands``.

# -- defaults ----------------------------------------------------------------------------------

#: The largest message a server accepts unless told otherwise (advertised with
#: SIZE, RFC 1870), in octets: 35 MiB, what large providers accept, so that a
#: 25 MB attachment fits after base64.
DEFAULT_MAX_MESSAGE_SIZE = 35 * 1024 * 1024
