"""``--auth-mechanisms`` / ``[limits] auth_mechanisms``: the operator's list of SASL mechanisms."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import Limits, limits_from_options, limits_options


class AuthMechanismsTests(SynchronousTestCase):
    def test_default_is_everything_the_store_serves(self) -> None:
        self.assertEqual(Limits().auth_mechanisms, ())
        rows = {row[0]: row[3] for row in limits_options()}
        self.assertIn("[default: all]", rows["auth-mechanisms"])

    def test_names_are_normalised(self) -> None:
        limits = Limits(auth_mechanisms=("plain", "SCRAM-SHA-256", "PLAIN"))
        self.assertEqual(limits.auth_mechanisms, ("PLAIN", "SCRAM-SHA-256"))

    def test_unknown_name(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            Limits(auth_mechanisms=("PLAIN", "GSSAPI"))
        self.assertEqual(caught.exception.key, "auth_mechanisms")
        self.assertIn("'GSSAPI'", str(caught.exception))
        with self.assertRaises(ConfigError):
            Limits(auth_mechanisms=(1,))  # type: ignore[arg-type]

    def test_flag(self) -> None:
        limits = limits_from_options({"auth-mechanisms": "scram-sha-256, plain LOGIN"})
        self.assertEqual(limits.auth_mechanisms, ("SCRAM-SHA-256", "PLAIN", "LOGIN"))
        self.assertEqual(limits_from_options({}).auth_mechanisms, ())
        with self.assertRaises(ConfigError) as caught:
            limits_from_options({"auth-mechanisms": "PLAIN,NTLM"})
        self.assertTrue(str(caught.exception).startswith("--auth-mechanisms: "), caught.exception)

    def test_toml(self) -> None:
        text = '[limits]\nauth_mechanisms = ["scram-sha-256", "plain"]\n'
        limits = config_from_toml_text(text, {"limits": Limits})["limits"]
        assert isinstance(limits, Limits)
        self.assertEqual(limits.auth_mechanisms, ("SCRAM-SHA-256", "PLAIN"))
        with self.assertRaises(ConfigError) as caught:
            bad = '[limits]\nauth_mechanisms = ["DIGEST-MD5"]\n'
            config_from_toml_text(bad, {"limits": Limits})
        self.assertIn("DIGEST-MD5", str(caught.exception))

    def test_survives_the_worker_json(self) -> None:
        """Worker processes rebuild Limits from JSON (smtp.tap.worker_config)."""
        import json
        from dataclasses import asdict

        from netproto_twisted.core.config import parse_section

        sent = json.loads(json.dumps(asdict(Limits(auth_mechanisms=("PLAIN", "LOGIN")))))
        limits = parse_section(Limits, sent, "limits")
        self.assertEqual(limits.auth_mechanisms, ("PLAIN", "LOGIN"))
