"""Tests for netproto_twisted.core.errors."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import (
    ConfigError,
    NetprotoError,
    PermanentError,
    ProtocolError,
    TemporaryError,
    error_for_code,
)


class ErrorTests(SynchronousTestCase):
    def test_reply_codes(self) -> None:
        err = error_for_code(550, "5.1.1 no such user")
        self.assertIsInstance(err, PermanentError)
        self.assertEqual((err.code, err.text), (550, "5.1.1 no such user"))
        self.assertEqual(str(err), "550 5.1.1 no such user")
        self.assertIsInstance(error_for_code(421, "bye"), TemporaryError)
        plain = error_for_code(221, "bye")
        self.assertIs(type(plain), ProtocolError)
        self.assertIsInstance(plain, NetprotoError)

    def test_config_error_is_one_line(self) -> None:
        self.assertEqual(str(ConfigError("smtp.max_size", "expected an integer")),
                         "smtp.max_size: expected an integer")
        self.assertEqual(str(ConfigError("", "no such file")), "no such file")
