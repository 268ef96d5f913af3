"""NNTP (RFC 3977, 4642, 4643, 4644): a news server with an article store, and a client."""

from __future__ import annotations

__all__: list[str] = []
