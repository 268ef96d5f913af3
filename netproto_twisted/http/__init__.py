"""HTTP: the client side (an asynchronous urllib, :mod:`netproto_twisted.http.client`).

Everything public of the client is re-exported here; see docs/http_client.rst.
"""

from __future__ import annotations

from netproto_twisted.http.client import *  # noqa: F403
from netproto_twisted.http.client import __all__ as _client_all

__all__ = [*_client_all]
