"""The methods every server of bench/xmlrpc.py exposes (``--module bench.xmlrpc_methods``)."""

from __future__ import annotations

from typing import Any

#: The 100 structs ``structs()`` returns, built once (the servers marshal them per call).
STRUCTS: list[dict[str, Any]] = [
    {
        "id": i,
        "name": f"item number {i}",
        "price": i * 1.25,
        "active": i % 2 == 0,
        "tags": ["alpha", "beta", "gamma"],
    }
    for i in range(100)
]


def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


def structs() -> list[dict[str, Any]]:
    """Return 100 small structs."""
    return STRUCTS
