"""Tests of netproto_twisted.xmlrpc."""
