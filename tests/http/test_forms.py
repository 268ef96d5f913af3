"""Forms and cookies without the web server: limits, spooling, malformed input."""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.http import (
    FormError,
    FormLimits,
    delete_cookie_header,
    parse_form,
    read_cookies,
    set_cookie_header,
)


def multipart(*parts: tuple[str, bytes, str | None], boundary: str = "BB") -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename else ""
        )
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            + value
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


class FormTests(SynchronousTestCase):
    def parse(self, body: bytes, kind: str, limits: FormLimits | None = None, **kw: str) -> object:
        return parse_form(io.BytesIO(body), kind, len(body), limits or FormLimits(), **kw)

    def test_urlencoded_with_query(self) -> None:
        form = parse_form(
            io.BytesIO(b"a=1&b=caf%C3%A9&a=2&empty="),
            "application/x-www-form-urlencoded",
            26,
            query="q=z",
        )
        self.assertEqual(form.getlist("a"), ["1", "2"])
        self.assertEqual(form.getfirst("b"), "café")
        self.assertEqual(form.getfirst("empty"), "")
        self.assertEqual(form.getfirst("q"), "z")
        self.assertIsNone(form.getfirst("nope"))
        self.assertIn("a", form)

    def test_multipart_spools_big_files_to_disk(self) -> None:
        body = multipart(("t", b"text", None), ("f", b"x" * 5000, "a.bin"), ("g", b"yy", "b.txt"))
        form = parse_form(
            io.BytesIO(body), "multipart/form-data; boundary=BB", len(body),
            FormLimits(spool_threshold=1000),
        )  # fmt: skip
        self.addCleanup(form.close)
        self.assertEqual(form.getfirst("t"), "text")
        big, small = form.file("f"), form.file("g")
        assert big is not None and small is not None
        self.assertEqual((big.filename, big.size, big.read()), ("a.bin", 5000, b"x" * 5000))
        self.assertTrue(big.file._rolled)  # type: ignore[union-attr]
        self.assertFalse(small.file._rolled)  # type: ignore[union-attr]

    def test_limits(self) -> None:
        limits = FormLimits(max_parts=3, max_field_size=10, max_file_size=100, max_total=10_000)
        cases = [
            (multipart(*[("a", b"v", None)] * 4), "more than 3 form parts"),
            (multipart(("a", b"v" * 11, None)), "over 10 bytes"),
            (multipart(("f", b"v" * 101, "x")), "file over 100 bytes"),
        ]
        for body, text in cases:
            with self.assertRaises(FormError) as caught:
                parse_form(io.BytesIO(body), "multipart/form-data; boundary=BB", len(body), limits)
            self.assertEqual(caught.exception.status, 413)
            self.assertIn(text, str(caught.exception))
        with self.assertRaises(FormError) as caught:
            parse_form(io.BytesIO(b"a=1"), "application/x-www-form-urlencoded", 20_000, limits)
        self.assertEqual(caught.exception.status, 413)
        with self.assertRaises(FormError) as caught:  # no Content-Length: counted while read
            parse_form(
                io.BytesIO(b"a" * 20_000), "application/x-www-form-urlencoded", None, limits
            )
        self.assertEqual(caught.exception.status, 413)
        body = b"&".join([b"a=1"] * 4)
        self.assertRaises(
            FormError, parse_form, io.BytesIO(body), "application/x-www-form-urlencoded",
            len(body), limits,
        )  # fmt: skip

    def test_malformed(self) -> None:
        with self.assertRaises(FormError) as caught:
            parse_form(io.BytesIO(b"x"), "multipart/form-data", 1)
        self.assertEqual(caught.exception.status, 400)
        with self.assertRaises(FormError) as caught:
            parse_form(io.BytesIO(b"garbage"), "multipart/form-data; boundary=BB", 7)
        self.assertEqual(caught.exception.status, 400)
        with self.assertRaises(FormError) as caught:
            parse_form(io.BytesIO(b"{}"), "application/json", 2)
        self.assertEqual(caught.exception.status, 415)


class CookieTests(SynchronousTestCase):
    def test_set_cookie_defaults_are_safe(self) -> None:
        self.assertEqual(
            set_cookie_header("sid", "abc"), "sid=abc; HttpOnly; Path=/; SameSite=Lax; Secure"
        )
        header = set_cookie_header(
            "t", "a b", max_age=60, secure=False, httponly=False, samesite="Strict", path="/x"
        )
        self.assertEqual(header, 't="a b"; Max-Age=60; Path=/x; SameSite=Strict')
        self.assertIn("Max-Age=0", delete_cookie_header("sid"))

    def test_bad_cookies_refused(self) -> None:
        self.assertRaises(ValueError, set_cookie_header, "bad name", "v")
        self.assertRaises(ValueError, set_cookie_header, "s", "v", samesite="None", secure=False)

    def test_read_cookies(self) -> None:
        self.assertEqual(
            read_cookies(b'a=1; b="x y"; junk; =v; c=3; a=2'), {"a": "1", "b": "x y", "c": "3"}
        )
        self.assertEqual(read_cookies(None), {})
        self.assertEqual(read_cookies("a=b=c; d=2")["d"], "2")
