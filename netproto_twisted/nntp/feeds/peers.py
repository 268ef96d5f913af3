"""Outgoing feed peers: who gets which articles (INN ``newsfeeds`` rules), parsed from options.

A :class:`FeedPeer` is one ``[[nntp.feeds]]`` table of the combined daemon's
configuration, or one ``--feed`` option of ``twistd netproto-nntp``::

    --feed "inn=news.example.net:119,groups=*,!junk,!control*,@alt.binaries.*"
    --feed "backup=[2001:db8::7]:563,tls=implicit,ihave,path=backup.example"

:meth:`FeedPeer.wants` decides whether an article goes to the peer, as INN
does for a site of its ``newsfeeds`` file: for each newsgroup of the
article's ``Newsgroups`` header the *last* pattern that matches it decides
(a plain wildmat selects the group, ``!pattern`` unselects it, ``@pattern``
poisons the article: it is not sent at all); the article is sent when at
least one group is selected and none poisoned -- and never when the peer's
path identity is already in the ``Path`` (it has the article, or feeds it on).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.nntp._wire import WildmatError, wildmat

__all__ = ["FeedPeer", "compile_groups", "parse_feed", "path_entries"]

FeedMode = Literal["streaming", "ihave"]
FeedTLS = Literal["none", "starttls", "implicit", "opportunistic"]

#: A compiled pattern list: ``(kind, matcher)`` with kind ``"+"``, ``"!"`` or ``"@"``.
GroupRules = tuple[tuple[str, Callable[[str], bool]], ...]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
#: The bare words of a ``--feed`` specification and what they set.
_FLAGS: dict[str, tuple[str, Any]] = {
    "streaming": ("mode", "streaming"),
    "ihave": ("mode", "ihave"),
    "check": ("check", True),
    "nocheck": ("check", False),
    "tls": ("tls", "starttls"),
}
#: ``key=value`` words of a specification: the field each sets.
_KEYS = {
    "mode": "mode",
    "groups": "groups",
    "path": "path_identity",
    "tls": "tls",
    "window": "window",
    "user": "user",
    "password": "password",
    "retry": "retry",
    "max-retry": "max_retry",
    "max-attempts": "max_attempts",
    "max-age": "max_age",
    "idle": "idle",
    "check": "check",
}


def compile_groups(patterns: Sequence[str]) -> GroupRules:
    """Compile INN-style newsgroup patterns (``pattern``, ``!pattern``, ``@pattern``).

    :raises ValueError: an empty or malformed pattern.
    """
    rules: list[tuple[str, Callable[[str], bool]]] = []
    for pattern in patterns:
        kind, text = ("+", pattern)
        if pattern[:1] in ("!", "@"):
            kind, text = pattern[0], pattern[1:]
        if not text or "," in text or text[:1] in ("!", "@"):
            raise ValueError(f"bad newsgroup pattern {pattern!r}")
        try:
            rules.append((kind, wildmat(text)))
        except WildmatError as e:
            raise ValueError(f"bad newsgroup pattern {pattern!r}: {e}") from None
    return tuple(rules)


def path_entries(path: str) -> list[str]:
    """The names of a Path header's value (``a!b!not-for-mail`` -> ``[a, b, not-for-mail]``)."""
    return [p for p in "".join(path.split()).split("!") if p]


@dataclass(frozen=True)
class FeedPeer:
    """One outgoing feed: the peer, what it gets, how, and how hard to retry.

    :ivar name: the feed's name (the queue's key; log lines use it).
    :ivar path_identity: the peer's name in Path headers ('' = ``name``):
        an article whose Path has it is not queued for the peer.
    :ivar groups: INN ``newsfeeds`` patterns (see the module docstring).
    :ivar mode: ``streaming`` (MODE STREAM, CHECK/TAKETHIS; IHAVE when the
        peer refuses MODE STREAM) or ``ihave``.
    :ivar check: in streaming mode, ask CHECK before each TAKETHIS.
    :ivar window: articles in flight at once (streaming).
    :ivar retry: first delay before reconnecting after a failure (doubles).
    :ivar max_retry: longest delay between connection attempts.
    :ivar max_attempts: "try later" answers (431, 436) before an article is dropped.
    :ivar max_age: seconds an article may wait in the queue before it is dropped.
    :ivar idle: seconds a connection stays open with nothing to send.
    """

    name: str = field(default="", help="feed name (queue key, log lines)")
    host: str = field(default="", help="peer host name or address")
    port: int = field(default=119, minimum=1, maximum=65535, help="peer port")
    mode: FeedMode = field(default="streaming", help="streaming (CHECK/TAKETHIS) or ihave")
    groups: tuple[str, ...] = field(
        default=("*",), help="newsgroup patterns as INN's newsfeeds: pat, !pat, @pat"
    )
    path_identity: str = field(default="", help="the peer's Path name; '' = name")
    tls: FeedTLS = field(default="none", help="none, starttls, implicit or opportunistic")
    check: bool = field(default=True, help="CHECK before TAKETHIS")
    window: int = field(default=100, minimum=1, maximum=10000, help="articles in flight")
    user: str = field(default="", help="AUTHINFO user at the peer ('' = no login)")
    password: str = field(default="", help="AUTHINFO password at the peer")
    retry: float = field(default=30.0, minimum=0.0, help="first reconnect delay, s (doubles)")
    max_retry: float = field(default=3600.0, minimum=0.0, help="longest reconnect delay, s")
    max_attempts: int = field(default=30, minimum=1, help="'try later' answers before a drop")
    max_age: float = field(default=7 * 86400.0, minimum=1.0, help="seconds queued before a drop")
    idle: float = field(default=60.0, minimum=0.0, help="seconds an idle connection stays open")

    def __post_init__(self) -> None:
        check_bounds(self)
        if not _NAME.match(self.name):
            raise ValueError(f"bad feed name {self.name!r}")
        if not self.host:
            raise ValueError(f"feed {self.name}: no host")
        if self.mode not in ("streaming", "ihave"):
            raise ValueError(f"feed {self.name}: mode is streaming or ihave, not {self.mode!r}")
        if self.tls not in ("none", "starttls", "implicit", "opportunistic"):
            raise ValueError(f"feed {self.name}: tls is none, starttls, implicit or opportunistic")
        if self.retry > self.max_retry:
            raise ValueError(f"feed {self.name}: retry is more than max_retry")
        if bool(self.user) != bool(self.password):
            raise ValueError(f"feed {self.name}: give both user and password, or neither")
        if not self.groups:
            raise ValueError(f"feed {self.name}: no newsgroup patterns")
        object.__setattr__(self, "_rules", compile_groups(self.groups))

    @property
    def identity(self) -> str:
        """The name that marks, in a Path, that the peer has seen the article."""
        return self.path_identity or self.name

    def wants(self, groups: Sequence[str], path: Sequence[str]) -> bool:
        """Whether an article in ``groups`` whose Path names are ``path`` goes to this peer."""
        if self.identity in path:
            return False
        rules: GroupRules = getattr(self, "_rules")  # noqa: B009 - set in __post_init__
        selected = False
        for group in groups:
            decision = ""
            for kind, matches in rules:
                if matches(group):
                    decision = kind
            if decision == "@":
                return False
            if decision == "+":
                selected = True
        return selected

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (``retry`` doubled, to ``max_retry``)."""
        if failures <= 0:
            return 0.0
        return float(min(self.max_retry, self.retry * 2.0 ** min(failures - 1, 60)))

    def describe(self) -> str:
        """``name (host:port, mode)`` for log lines."""
        return f"{self.name} ({self.host}:{self.port}, {self.mode})"


def _split_address(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}")
        return host, int(rest[1:]) if rest else None
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if ":" in host:
        raise ValueError(f"put an IPv6 address in brackets: {text!r}")
    return host, int(port)


def _value(name: str, raw: str) -> Any:
    kinds = {f.name: f.type for f in fields(FeedPeer)}
    kind = str(kinds[name])
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        if raw.lower() in ("yes", "true", "on", "1"):
            return True
        if raw.lower() in ("no", "false", "off", "0"):
            return False
        raise ValueError(f"{name} is yes or no, not {raw!r}")
    return raw


def parse_feed(spec: str) -> FeedPeer:
    """Parse ``NAME=HOST[:PORT][,OPTION...]`` (see docs/nntp.rst, "Outgoing feeds").

    Options: the words ``streaming``, ``ihave``, ``check``, ``nocheck``, ``tls``
    (STARTTLS required) and ``key=value`` for ``mode``, ``groups``, ``path``,
    ``tls``, ``window``, ``user``, ``password``, ``retry``, ``max-retry``,
    ``max-attempts``, ``max-age``, ``idle``.  ``groups=`` takes the following
    comma-separated words that are not options as further patterns.

    :raises ValueError: with a one-line reason.
    """
    name, sep, rest = spec.partition("=")
    if not sep:
        raise ValueError(f"a feed is NAME=HOST[:PORT][,OPTION...], not {spec!r}")
    words = [w.strip() for w in rest.split(",")]
    try:
        host, port = _split_address(words[0])
    except ValueError as e:
        raise ValueError(f"feed {name}: {e}") from None
    values: dict[str, Any] = {"name": name.strip(), "host": host}
    if port is not None:
        values["port"] = port
    groups: list[str] | None = None
    last_key = ""
    for word in words[1:]:
        key, eq, raw = word.partition("=")
        if eq and key in _KEYS:
            last_key = key
            if key == "groups":
                groups = [raw]
            else:
                try:
                    values[_KEYS[key]] = _value(_KEYS[key], raw)
                except ValueError as e:
                    raise ValueError(f"feed {name}: bad {key}: {e}") from None
        elif not eq and word in _FLAGS:
            last_key = word
            attribute, setting = _FLAGS[word]
            values[attribute] = setting
        elif not eq and last_key == "groups" and groups is not None:
            groups.append(word)
        else:
            raise ValueError(f"feed {name}: unknown option {word!r}")
    if groups is not None:
        values["groups"] = tuple(groups)
    return FeedPeer(**values)

