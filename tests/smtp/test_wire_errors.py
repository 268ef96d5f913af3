"""Tests for netproto_twisted.smtp.errors: codes pick temporary/permanent classes."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import pickle

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import (
    NetprotoError,
    PermanentError,
    ProtocolError,
    RemoteProtocolError,
    TemporaryError,
)
from netproto_twisted.smtp import (
    CommandError,
    Reply,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSRequired,
    error_from_reply,
)

CODE_TEXT_CLASSES: list[type[SMTPResponseError]] = [
    SMTPResponseError,
    SMTPConnectError,
    SMTPHeloError,
    SMTPDataError,
    SMTPAuthenticationError,
]


class HierarchyTests(SynchronousTestCase):
    """The 4xx/5xx variants and the common bases."""

    def test_code_text_classes(self) -> None:
        for cls in CODE_TEXT_CLASSES:
            temp = cls(451, "4.3.0 later")
            perm = cls(554, "5.7.1 never")
            for error in (temp, perm):
                self.assertIsInstance(error, cls)
                self.assertIsInstance(error, SMTPResponseError)
                self.assertIsInstance(error, SMTPError)
                self.assertIsInstance(error, ProtocolError)
                self.assertIsInstance(error, NetprotoError)
            self.assertIsInstance(temp, TemporaryError)
            self.assertNotIsInstance(temp, PermanentError)
            self.assertIsInstance(perm, PermanentError)
            self.assertNotIsInstance(perm, TemporaryError)
            self.assertEqual((perm.code, perm.text), (554, "5.7.1 never"))
            self.assertEqual(str(perm), "554 5.7.1 never")
            self.assertTrue(temp.temporary)
            self.assertFalse(temp.permanent)
            self.assertTrue(perm.permanent)

    def test_other_codes_get_the_plain_class(self) -> None:
        error = SMTPDataError(250, "odd")
        self.assertIs(type(error), SMTPDataError)
        self.assertNotIsInstance(error, (TemporaryError, PermanentError))
        self.assertFalse(error.temporary or error.permanent)

    def test_variant_names(self) -> None:
        self.assertEqual(type(SMTPDataError(552, "x")).__name__, "SMTPDataError[5xx]")
        self.assertEqual(type(SMTPResponseError(421, "x")).__name__, "SMTPResponseError[4xx]")

    def test_variants_are_distinct_per_class(self) -> None:
        self.assertNotIsInstance(SMTPDataError(550, "x"), SMTPHeloError)
        self.assertNotIsInstance(SMTPHeloError(550, "x"), SMTPDataError)

    def test_except_permanent_catches_any_5xx(self) -> None:
        caught = []
        errors: list[SMTPResponseError] = [
            SMTPSenderRefused(553, "bad", "a@b"),
            SMTPRecipientsRefused({"a@b": (550, "no")}),
            SMTPNotSupportedError("no SMTPUTF8"),
            SMTPTLSRequired("STARTTLS not offered"),
            SMTPDataError(554, "no"),
        ]
        for error in errors:
            try:
                raise error
            except PermanentError as e:
                caught.append(e)
        self.assertEqual(caught, errors)

    def test_sender_refused(self) -> None:
        error = SMTPSenderRefused(451, "4.3.0 later", "a@b.example")
        self.assertIsInstance(error, TemporaryError)
        self.assertEqual(
            (error.code, error.text, error.sender), (451, "4.3.0 later", "a@b.example")
        )

    def test_recipients_refused(self) -> None:
        refused = {"a@x": (550, "5.1.1 no"), "b@x": (452, "4.2.2 full"), "c@x": (451, "later")}
        error = SMTPRecipientsRefused(refused)
        self.assertEqual(error.recipients, refused)
        self.assertEqual((error.code, error.text), (452, "4.2.2 full"))
        self.assertIsInstance(error, TemporaryError)
        self.assertIn("3 recipient(s)", str(error))
        permanent = SMTPRecipientsRefused({"a@x": (550, "no"), "b@x": (553, "bad")})
        self.assertEqual(permanent.code, 550)
        self.assertIsInstance(permanent, PermanentError)
        self.assertRaises(ValueError, SMTPRecipientsRefused, {})

    def test_defaults(self) -> None:
        self.assertEqual(SMTPNotSupportedError("x").code, 502)
        self.assertEqual(SMTPNotSupportedError("x", 504).code, 504)
        disconnected = SMTPServerDisconnected()
        self.assertEqual((disconnected.code, disconnected.text), (421, "connection lost"))
        self.assertIsInstance(disconnected, TemporaryError)
        self.assertEqual(SMTPTLSRequired("x").code, 530)
        self.assertIsInstance(SMTPTLSRequired("x", code=454), TemporaryError)
        self.assertIsInstance(SMTPServerDisconnected("gone", code=554), PermanentError)

    def test_pickle_roundtrip(self) -> None:
        errors: list[SMTPResponseError] = [
            SMTPResponseError(550, "x"),
            SMTPSenderRefused(553, "bad", "a@b"),
            SMTPRecipientsRefused({"a@b": (450, "busy")}),
            SMTPNotSupportedError("no", 504),
            SMTPServerDisconnected("gone"),
            SMTPTLSRequired("need TLS", 454),
            SMTPDataError(250, "odd"),
        ]
        for error in errors:
            copy = pickle.loads(pickle.dumps(error))
            self.assertIs(type(copy), type(error))
            self.assertEqual(
                (copy.code, copy.text, copy.args), (error.code, error.text, error.args)
            )
        sender = pickle.loads(pickle.dumps(SMTPSenderRefused(553, "bad", "a@b")))
        self.assertEqual(sender.sender, "a@b")

    def test_error_from_reply_for_each_class(self) -> None:
        reply = Reply.make(535, "bad credentials", "7.8")
        error = error_from_reply(reply, SMTPAuthenticationError)
        self.assertIsInstance(error, SMTPAuthenticationError)
        self.assertIsInstance(error, PermanentError)
        self.assertEqual(error.text, "5.7.8 bad credentials")
        self.assertIs(error.reply, reply)
        not_supported = error_from_reply(
            Reply(504, ("unrecognized mechanism",)), SMTPNotSupportedError
        )
        self.assertEqual((not_supported.code, not_supported.text), (504, "unrecognized mechanism"))
        gone = error_from_reply(Reply(421, ("closing",)), SMTPServerDisconnected)
        self.assertIsInstance(gone, TemporaryError)


class CommandErrorTests(SynchronousTestCase):
    """CommandError carries the reply the server sends."""

    def test_fields(self) -> None:
        reply = Reply.make(501, "Bad sender address syntax", "1.7")
        error = CommandError(reply)
        self.assertIs(error.reply, reply)
        self.assertEqual((error.code, error.text), (501, "5.1.7 Bad sender address syntax"))
        self.assertEqual(str(error), "501 5.1.7 Bad sender address syntax")
        self.assertIsInstance(error, RemoteProtocolError)
        self.assertIsInstance(error, SMTPError)
