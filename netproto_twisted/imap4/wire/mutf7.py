"""IMAP's modified UTF-7 mailbox-name codec (RFC 3501 section 5.1.3).

The codec lives with the mail store's names (Maildir++ folder directories use
it too); this module is its IMAP face.
"""

from netproto_twisted.mailstore.names import mutf7_decode, mutf7_encode

__all__ = ["mutf7_decode", "mutf7_encode"]
