"""The methods of the classic XML-RPC validator suite (validator1), for both directions."""

from __future__ import annotations

from typing import Any


def arrayOfStructsTest(structs: list[dict[str, Any]]) -> int:
    """Sum the ``curly`` members of an array of structs."""
    return sum(s["curly"] for s in structs)


def countTheEntities(text: str) -> dict[str, int]:
    """Count the characters XML must escape."""
    return {
        "ctLeftAngleBrackets": text.count("<"),
        "ctRightAngleBrackets": text.count(">"),
        "ctAmpersands": text.count("&"),
        "ctApostrophes": text.count("'"),
        "ctQuotes": text.count('"'),
    }


def easyStructTest(struct: dict[str, int]) -> int:
    """Sum ``moe``, ``larry`` and ``curly``."""
    return struct["moe"] + struct["larry"] + struct["curly"]


def echoStructTest(struct: dict[str, Any]) -> dict[str, Any]:
    """Return the struct."""
    return struct


def manyTypesTest(*values: Any) -> list[Any]:
    """Return the six values (number, boolean, string, double, dateTime, base64) as an array."""
    return list(values)


def moderateSizeArrayCheck(strings: list[str]) -> str:
    """Concatenate the first and last strings."""
    return strings[0] + strings[-1]


def nestedStructTest(calendar: dict[str, Any]) -> int:
    """Sum moe, larry and curly of April 1st, 2000."""
    day = calendar["2000"]["04"]["01"]
    return int(day["moe"] + day["larry"] + day["curly"])


def simpleStructReturnTest(number: int) -> dict[str, int]:
    """Return the number times 10, 100 and 1000."""
    return {"times10": number * 10, "times100": number * 100, "times1000": number * 1000}


FUNCTIONS = [
    arrayOfStructsTest,
    countTheEntities,
    easyStructTest,
    echoStructTest,
    manyTypesTest,
    moderateSizeArrayCheck,
    nestedStructTest,
    simpleStructReturnTest,
]
