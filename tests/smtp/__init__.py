"""Tests for netproto_twisted.smtp."""
