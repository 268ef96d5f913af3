"""Tests for netproto_twisted.smtp.client.body: BDAT line-ending normalisation over chunks."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp.client.body import EolNormalizer
from tests.core.test_dotstuff import split


class EolNormalizerTests(SynchronousTestCase):
    """CRLF, bare CR and bare LF all become CRLF, however the stream is cut."""

    @settings(max_examples=500, deadline=None)
    @given(
        st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"."]), max_size=30).map(b"".join),
        st.lists(st.integers(0, 40), max_size=10),
    )
    def test_any_chunking(self, data: bytes, cuts: list[int]) -> None:
        """Chunk by chunk gives what one regular expression gives on the whole."""
        normalizer = EolNormalizer()
        out = b"".join(normalizer.encode(c) for c in split(data, cuts))
        self.assertEqual(out, re.sub(rb"\r\n|\r|\n", b"\r\n", data))

    def test_lf_chunk_after_cr(self) -> None:
        """A CR ending a chunk pairs with one LF only, even when that LF is a chunk alone."""
        normalizer = EolNormalizer()
        out = [normalizer.encode(c) for c in (b"aa\r", b"", b"\n", b"\n", b"x")]
        self.assertEqual(b"".join(out), b"aa\r\n\r\nx")
