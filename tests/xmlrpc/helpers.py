"""Shared pieces of the XML-RPC tests: a registry, the stdlib server in a thread, the cases."""

from __future__ import annotations

import threading
import xmlrpc.client
import xmlrpc.server
from collections.abc import Callable
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, succeed

from netproto_twisted.xmlrpc import Fault, MethodRegistry, blocking
from tests.xmlrpc import validator


def sample_registry() -> MethodRegistry:
    """A registry with sync, Deferred, coroutine, blocking and failing methods, plus validator1."""
    registry = MethodRegistry()

    @registry.register_function(signatures=[["int", "int", "int"]])
    def add(a: int, b: int) -> int:
        """Return <a> + b & nothing else."""
        return a + b

    @registry.register_function
    def echo(*values: Any) -> list[Any]:
        return list(values)

    @registry.register_function(name="later.add")
    def deferred_add(a: int, b: int) -> Deferred[int]:
        return succeed(a + b)

    @registry.register_function
    async def coro_add(a: int, b: int) -> int:
        await succeed(None)
        return a + b

    @registry.register_function
    @blocking
    def thread_name() -> str:
        return threading.current_thread().name

    @registry.register_function
    def boom() -> None:
        raise KeyError("/secret/path")

    @registry.register_function
    def fault() -> None:
        raise Fault(42, "the answer")

    @registry.register_function
    def stdlib_fault() -> None:
        raise xmlrpc.client.Fault(7, "stdlib fault")

    @registry.register_function
    def unmarshallable() -> object:
        return object()

    for func in validator.FUNCTIONS:
        registry.register_function(func)
    return registry


class StdlibServer:
    """``xmlrpc.server.SimpleXMLRPCServer`` serving the validator methods in a thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = xmlrpc.server.SimpleXMLRPCServer(
            ("127.0.0.1", 0), logRequests=False, **kwargs
        )
        self.server.register_introspection_functions()
        self.server.register_multicall_functions()
        self.server.register_function(lambda a, b: a + b, "add")
        self.server.register_function(lambda *v: list(v), "echo")
        for func in validator.FUNCTIONS:
            self.server.register_function(func)

        def fail() -> None:
            raise xmlrpc.client.Fault(99, "stdlib says no")

        self.server.register_function(fail, "fail")
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/RPC2"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


NESTED_CALENDAR = {
    "2000": {
        "03": {"31": {"moe": 1, "larry": 2, "curly": 3}},
        "04": {"01": {"moe": 12, "larry": 13, "curly": 14}, "02": {"moe": 5}},
    },
    "1999": {"12": {"31": {"moe": 100, "larry": 100, "curly": 100}}},
}


def validator_cases() -> list[tuple[str, tuple[Any, ...], Callable[[Any], Any]]]:
    """``(method, params, check)``: check(result) returns the expected value to compare."""
    strings = [f"item{i}" for i in range(150)]
    when = xmlrpc.client.DateTime("19040101T05:24:03")
    return [
        (
            "arrayOfStructsTest",
            ([{"moe": 1, "larry": 2, "curly": c} for c in (3, 4, 5)],),
            lambda r: 12,
        ),
        (
            "countTheEntities",
            ("<<>&'\"\"x'<",),
            lambda r: {
                "ctLeftAngleBrackets": 3,
                "ctRightAngleBrackets": 1,
                "ctAmpersands": 1,
                "ctApostrophes": 2,
                "ctQuotes": 2,
            },
        ),
        ("easyStructTest", ({"moe": 5, "larry": 6, "curly": 7},), lambda r: 18),
        (
            "echoStructTest",
            ({"substruct0": {"moe": 1, "larry": [2, 3], "curly": "x"}, "é": {}},),
            lambda r: {"substruct0": {"moe": 1, "larry": [2, 3], "curly": "x"}, "é": {}},
        ),
        (
            "manyTypesTest",
            (7, True, "str<&>", -3.25, when, xmlrpc.client.Binary(b"\x00\x01bin")),
            lambda r: [7, True, "str<&>", -3.25, when, xmlrpc.client.Binary(b"\x00\x01bin")],
        ),
        ("moderateSizeArrayCheck", (strings,), lambda r: "item0item149"),
        ("nestedStructTest", (NESTED_CALENDAR,), lambda r: 39),
        (
            "simpleStructReturnTest",
            (3,),
            lambda r: {"times10": 30, "times100": 300, "times1000": 3000},
        ),
    ]


def normalise(value: Any) -> Any:
    """Compare DateTime/Binary by content (their __eq__ handles it; datetime for safety)."""
    if isinstance(value, datetime):
        return xmlrpc.client.DateTime(value)
    return value
