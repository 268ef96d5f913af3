"""Sans-I/O pieces: decoding, data: URLs, digest computation, challenge parsing, redirect rules."""

from __future__ import annotations

import gzip
import zlib

import brotli
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.http.client.auth import digest_response, parse_challenges
from netproto_twisted.http.client.decoding import Decoder, make_decoder
from netproto_twisted.http.client.errors import DecompressionBomb
from netproto_twisted.http.client.handlers import HTTPRedirectHandler, ProxyHandler, parse_data_url
from netproto_twisted.http.client.request import Request, origin_of


def _decode(decoder: Decoder, data: bytes, step: int = 7) -> bytes:
    out: list[bytes] = []
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step], out.append)
    decoder.flush(out.append)
    return b"".join(out)


class DecodingTests(SynchronousTestCase):
    @settings(max_examples=40, deadline=None)
    @given(st.binary(max_size=3000), st.integers(min_value=1, max_value=500))
    def test_every_coding_round_trips_in_any_chunking(self, body: bytes, step: int) -> None:
        raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        encoded = {
            "gzip": gzip.compress(body),
            "deflate": zlib.compress(body),
            "br": brotli.compress(body),
        }
        raw_deflate = raw.compress(body) + raw.flush()
        for coding, data in encoded.items():
            self.assertEqual(_decode(Decoder(coding), data, step), body, coding)
        if raw_deflate[:1] and raw_deflate[0] & 0x0F != 8:
            self.assertEqual(_decode(Decoder("deflate"), raw_deflate, step), body)

    def test_bomb_stops_early(self) -> None:
        bomb = gzip.compress(bytes(50 << 20), 9)
        decoder = Decoder("gzip")
        seen = []
        with self.assertRaises(DecompressionBomb):
            decoder.feed(bomb, lambda b: seen.append(len(b)))
        self.assertLess(sum(seen), 4 << 20)

    def test_size_limit(self) -> None:
        with self.assertRaises(DecompressionBomb):
            _decode(Decoder("gzip", max_size=1000, max_ratio=10**9), gzip.compress(b"a" * 2000))

    def test_unknown_or_stacked_codings_left_alone(self) -> None:
        self.assertIsNone(make_decoder("compress"))
        self.assertIsNone(make_decoder("gzip, br"))
        self.assertIsNone(make_decoder("identity"))
        self.assertIsNotNone(make_decoder(" GZIP "))


class DataURLTests(SynchronousTestCase):
    def test_rfc2397_examples(self) -> None:
        self.assertEqual(parse_data_url("data:,A%20brief%20note"),
                         ("text/plain;charset=US-ASCII", b"A brief note"))  # fmt: skip
        self.assertEqual(parse_data_url("data:image/gif;base64,R0lG"), ("image/gif", b"GIF"))
        self.assertEqual(parse_data_url("data:;charset=utf-8,%C3%A9"),
                         ("text/plain;charset=utf-8", "é".encode()))  # fmt: skip

    def test_not_data(self) -> None:
        with self.assertRaises(ValueError):
            parse_data_url("data:no-comma")


class DigestTests(SynchronousTestCase):
    """RFC 7616 section 3.9.1 (the Mufasa example)."""

    challenge = {
        "realm": "http-auth@example.org",
        "qop": "auth, auth-int",
        "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    }
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

    def answer(self, algorithm: str) -> str:
        return digest_response(
            {**self.challenge, "algorithm": algorithm},
            user="Mufasa",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            cnonce=self.cnonce,
        )

    def test_md5(self) -> None:
        self.assertIn('response="8ca523f5e9506fed4657c9700eebdbec"', self.answer("MD5"))

    def test_sha256(self) -> None:
        value = self.answer("SHA-256")
        self.assertIn(
            'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"', value
        )
        self.assertIn("qop=auth, nc=00000001", value)
        self.assertIn('opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"', value)

    def test_unsupported(self) -> None:
        with self.assertRaises(ValueError):
            self.answer("SHA-1024")
        with self.assertRaises(ValueError):
            digest_response({"qop": "auth-int"}, user="u", password="p", method="GET", uri="/")

    def test_challenges(self) -> None:
        header = (
            'Digest realm="a, b", nonce="n\\"q", algorithm=SHA-256, qop="auth", '
            'Digest realm="a, b", nonce="m", algorithm=MD5, Basic realm="c"'
        )
        self.assertEqual(
            parse_challenges([header, "Bearer tok68=="]),
            [
                ("digest", {"realm": "a, b", "nonce": 'n"q', "algorithm": "SHA-256",
                            "qop": "auth"}),
                ("digest", {"realm": "a, b", "nonce": "m", "algorithm": "MD5"}),
                ("basic", {"realm": "c"}),
                ("bearer", {"token68": "tok68=="}),
            ],
        )  # fmt: skip

    @given(st.text(max_size=200))
    def test_challenge_parser_never_raises(self, text: str) -> None:
        parse_challenges([text])


class RedirectRuleTests(SynchronousTestCase):
    def follow(self, method: str, code: int, data: object = b"body", to: str = "http://a/x"):
        req = Request("http://a/", data, {"Content-Type": "x/y", "Authorization": "B s"},
                      method=method)  # fmt: skip
        return HTTPRedirectHandler().redirect_request(req, None, code, "", {}, to)  # type: ignore[arg-type]

    def test_method_rules(self) -> None:
        cases = {
            ("POST", 301): "GET", ("POST", 302): "GET", ("PUT", 302): "PUT",
            ("PUT", 303): "GET", ("HEAD", 303): "HEAD", ("POST", 307): "POST",
            ("DELETE", 308): "DELETE",
        }  # fmt: skip
        for (method, code), expected in cases.items():
            new = self.follow(method, code)
            self.assertEqual(new.get_method(), expected, (method, code))
            if expected == "GET":
                self.assertIsNone(new.data)
                self.assertFalse(new.has_header("Content-type"))
            elif code in (307, 308):
                self.assertEqual(new.data, b"body")

    def test_streamed_body_not_replayed(self) -> None:
        self.assertIsNone(self.follow("POST", 307, data=object()))

    def test_authorization_kept_same_origin_only(self) -> None:
        self.assertTrue(self.follow("GET", 302, None, "http://a:80/y").has_header("Authorization"))
        for other in ("http://b/", "https://a/", "http://a:8080/"):
            self.assertFalse(self.follow("GET", 302, None, other).has_header("Authorization"))

    def test_origin(self) -> None:
        self.assertEqual(origin_of("HTTPS://Example.COM/x"), ("https", "example.com", 443))
        self.assertEqual(origin_of("http://[::1]:81/"), ("http", "::1", 81))


class ProxyChoiceTests(SynchronousTestCase):
    def test_environment_and_no_proxy(self) -> None:
        env = {
            "http_proxy": "http://u%40x:p%3Aw@proxy.example:3128",
            "https_proxy": "proxy2.example:8080",
            "no_proxy": "internal.example,.corp",
        }
        self.patch(__import__("os"), "environ", env)
        handler = ProxyHandler()
        req = handler.http_request(Request("http://www.example/"))
        self.assertEqual(req.proxy.url, "http://proxy.example:3128")
        self.assertEqual((req.proxy.user, req.proxy.password), ("u@x", "p:w"))
        req = handler.https_request(Request("https://www.example/"))
        self.assertEqual((req.proxy.url, req.proxy.port), ("http://proxy2.example:8080", 8080))
        for bypassed in ("http://internal.example/", "http://a.corp/"):
            self.assertIsNone(handler.http_request(Request(bypassed)).proxy)

    def test_explicit_empty(self) -> None:
        self.assertIsNone(ProxyHandler({}).http_request(Request("http://x/")).proxy)
