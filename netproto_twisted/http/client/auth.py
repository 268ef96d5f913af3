"""Basic (RFC 7617) and Digest (RFC 7616: MD5, SHA-256, SHA-512-256, -sess) authentication.

The password managers are urllib's own (:class:`urllib.request.HTTPPasswordMgr`,
``...WithDefaultRealm``, ``...WithPriorAuth``), re-exported here; the
handlers answer a 401 (or a proxy's 407) by repeating the request once with
credentials, and with ``HTTPPasswordMgrWithPriorAuth`` send Basic
credentials before being asked.  Challenges are parsed by
:func:`parse_challenges` (several per header, quoted strings, RFC 9110
section 11.6.1); the digest itself is computed by :func:`digest_response`.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit
from urllib.request import (
    HTTPPasswordMgr,
    HTTPPasswordMgrWithDefaultRealm,
    HTTPPasswordMgrWithPriorAuth,
)

from netproto_twisted.http.client.opener import BaseHandler
from netproto_twisted.http.client.request import Request
from netproto_twisted.http.client.response import Response
from netproto_twisted.http.client.transport import basic_credentials

__all__ = [
    "DIGEST_ALGORITHMS",
    "HTTPBasicAuthHandler",
    "HTTPDigestAuthHandler",
    "HTTPPasswordMgr",
    "HTTPPasswordMgrWithDefaultRealm",
    "HTTPPasswordMgrWithPriorAuth",
    "ProxyBasicAuthHandler",
    "ProxyDigestAuthHandler",
    "digest_response",
    "parse_challenges",
]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - an RFC 9110 token
_ITEM = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^,"])+')
_PARAM = re.compile(rf"^({_TOKEN})\s*=\s*(.*)$", re.S)
_SCHEME = re.compile(rf"^({_TOKEN})(?:\s+(.*))?$", re.S)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Parse ``WWW-Authenticate`` values into ``[(scheme lowercased, {param: value})]``.

    A header may hold several challenges (``Digest realm="a", nonce="b",
    Basic realm="c"``); commas inside quoted strings do not split.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in values:
        for m in _ITEM.finditer(value):
            item = m.group(0).strip()
            if not item:
                continue
            param = _PARAM.match(item)
            scheme = _SCHEME.match(item)
            if param is not None and challenges and " " not in param.group(1):
                challenges[-1][1][param.group(1).lower()] = _unquote(param.group(2))
                continue
            if scheme is None:
                continue
            params: dict[str, str] = {}
            challenges.append((scheme.group(1).lower(), params))
            rest = (scheme.group(2) or "").strip()
            if rest:
                p = _PARAM.match(rest)
                if (p is not None and not rest.rstrip("=").isalnum()) or (
                    p is not None and not rest.endswith("=")
                ):
                    params[p.group(1).lower()] = _unquote(p.group(2))
                else:
                    params["token68"] = rest
    return challenges


def _sha512_256(data: bytes) -> Any:
    return hashlib.new("sha512_256", data)


#: Digest algorithms we compute, strongest first; ``-sess`` variants too.
DIGEST_ALGORITHMS: dict[str, Callable[[bytes], Any]] = {
    "SHA-512-256": _sha512_256,
    "SHA-256": hashlib.sha256,
    "MD5": hashlib.md5,
}


def _algorithm(name: str) -> tuple[Callable[[bytes], Any], bool] | None:
    upper = name.upper()
    sess = upper.endswith("-SESS")
    base = upper[:-5] if sess else upper
    func = DIGEST_ALGORITHMS.get(base)
    return (func, sess) if func is not None else None


def digest_response(
    challenge: dict[str, str],
    *,
    user: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` value answering a Digest challenge (RFC 7616 section 3.4).

    Raises :class:`ValueError` for an algorithm or a qop we cannot do.
    """
    name = challenge.get("algorithm", "MD5")
    algo = _algorithm(name)
    if algo is None:
        raise ValueError(f"unsupported digest algorithm {name!r}")
    func, sess = algo

    def h(text: str) -> str:
        return str(func(text.encode("utf-8")).hexdigest())

    realm = challenge.get("realm", "")
    nonce = challenge.get("nonce", "")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise ValueError(f"unsupported qop {challenge.get('qop')!r}")
    if cnonce is None:
        cnonce = hashlib.sha256(os.urandom(16) + str(time.time()).encode()).hexdigest()[:32]
    ha1 = h(f"{user}:{realm}:{password}")
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    ncvalue = f"{nc:08x}"
    if qops:
        response = h(f"{ha1}:{nonce}:{ncvalue}:{cnonce}:auth:{ha2}")
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    userhash = challenge.get("userhash", "").lower() == "true"
    username = h(f"{user}:{realm}") if userhash else user
    fields = [
        f'username="{_quote(username)}"',
        f'realm="{_quote(realm)}"',
        f'nonce="{_quote(nonce)}"',
        f'uri="{_quote(uri)}"',
        f"algorithm={name}",
        f'response="{response}"',
    ]
    if "opaque" in challenge:
        fields.append(f'opaque="{_quote(challenge["opaque"])}"')
    if qops:
        fields += ["qop=auth", f"nc={ncvalue}", f'cnonce="{cnonce}"']
    if userhash:
        fields.append("userhash=true")
    return "Digest " + ", ".join(fields)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _retry_request(req: Request, header: str, value: str) -> Request:
    new = Request(
        req.full_url,
        req.data,
        dict(req.headers),
        origin_req_host=req.origin_req_host,
        unverifiable=req.unverifiable,
        method=req.get_method(),
        timeout=req.timeout,
    )
    for name, v in req.unredirected_hdrs.items():
        new.add_unredirected_header(name, v)
    new.add_unredirected_header(header, value)
    new.proxy = req.proxy
    new.total_timeout = req.total_timeout
    new.redirect_dict = req.redirect_dict
    new.redirect_count = req.redirect_count
    return new


class _AuthBase(BaseHandler):
    """Shared by the four handlers: find credentials, retry once."""

    auth_header = "Authorization"
    challenge_header = "www-authenticate"
    scheme = ""

    def __init__(self, password_mgr: HTTPPasswordMgr | None = None) -> None:
        self.passwd = password_mgr if password_mgr is not None else HTTPPasswordMgr()
        self.add_password = self.passwd.add_password

    def _where(self, req: Request) -> str:
        return req.full_url

    def _credentials(self, req: Request, realm: str | None) -> tuple[str, str] | None:
        user, password = self.passwd.find_user_password(realm, self._where(req))  # type: ignore[arg-type]
        if user is None:
            return None
        return user, password or ""

    def answer(self, req: Request, params: dict[str, str]) -> str | None:
        """The header value answering one challenge of our scheme, or ``None``."""
        raise NotImplementedError

    async def _retry(self, req: Request, response: Response, headers: Any) -> Response | None:
        challenges = parse_challenges(headers.get_all(self.challenge_header) or [])
        mine = [params for scheme, params in challenges if scheme == self.scheme]
        if not mine:
            return None
        value = None
        for params in self._order(mine):
            value = self.answer(req, params)
            if value is not None:
                break
        if value is None:
            return None
        if req.get_header(self.auth_header) == value or getattr(req, "_auth_retried", False):
            return None  # the same credentials failed already
        new = _retry_request(req, self.auth_header, value)
        new._auth_retried = True  # type: ignore[attr-defined]
        await response.close()
        result: Response = await self.parent.open(new)
        return result

    def _order(self, challenges: list[dict[str, str]]) -> list[dict[str, str]]:
        return challenges


class _BasicMixin(_AuthBase):
    scheme = "basic"

    def answer(self, req: Request, params: dict[str, str]) -> str | None:
        """Basic credentials for the challenge's realm."""
        creds = self._credentials(req, params.get("realm"))
        if creds is None:
            return None
        return basic_credentials(*creds)


class HTTPBasicAuthHandler(_BasicMixin):
    """Answer a 401 Basic challenge; send credentials first with a ...WithPriorAuth manager."""

    def http_request(self, req: Request) -> Request:
        """Add Basic credentials up front when the manager says the URL is authenticated."""
        is_auth = getattr(self.passwd, "is_authenticated", None)
        if is_auth is not None and is_auth(req.full_url) and not req.has_header("Authorization"):
            creds = self._credentials(req, None)
            if creds is not None:
                req.add_unredirected_header("Authorization", basic_credentials(*creds))
        return req

    https_request = http_request

    async def http_error_401(
        self, req: Request, response: Response, code: int, msg: str, headers: Any
    ) -> Response | None:
        """Repeat the request with credentials, once."""
        return await self._retry(req, response, headers)


class _DigestMixin(_AuthBase):
    scheme = "digest"

    def __init__(self, password_mgr: HTTPPasswordMgr | None = None) -> None:
        super().__init__(password_mgr)
        self.nonce_count: dict[str, int] = {}

    def _order(self, challenges: list[dict[str, str]]) -> list[dict[str, str]]:
        rank = {name: i for i, name in enumerate(DIGEST_ALGORITHMS)}

        def key(params: dict[str, str]) -> int:
            name = params.get("algorithm", "MD5").upper().removesuffix("-SESS")
            return rank.get(name, len(rank))

        return sorted(challenges, key=key)

    def answer(self, req: Request, params: dict[str, str]) -> str | None:
        """A Digest answer to the challenge, or ``None`` (no credentials, unknown algorithm)."""
        creds = self._credentials(req, params.get("realm"))
        if creds is None:
            return None
        nonce = params.get("nonce", "")
        self.nonce_count[nonce] = count = self.nonce_count.get(nonce, 0) + 1
        parts = urlsplit(req.full_url)
        uri = parts.path or "/"
        if parts.query:
            uri += "?" + parts.query
        try:
            return digest_response(
                params, user=creds[0], password=creds[1], method=req.get_method(), uri=uri,
                nc=count,
            )  # fmt: skip
        except ValueError:
            return None


class HTTPDigestAuthHandler(_DigestMixin):
    """Answer a 401 Digest challenge (the strongest algorithm offered first)."""

    handler_order = 490  # before Basic, as urllib orders them

    async def http_error_401(
        self, req: Request, response: Response, code: int, msg: str, headers: Any
    ) -> Response | None:
        """Repeat the request with a digest, once."""
        return await self._retry(req, response, headers)


class _ProxyMixin(_AuthBase):
    auth_header = "Proxy-authorization"
    challenge_header = "proxy-authenticate"

    def _where(self, req: Request) -> str:
        return req.proxy.url if req.proxy is not None else req.host


class ProxyBasicAuthHandler(_ProxyMixin, _BasicMixin):
    """Answer a proxy's 407 Basic challenge (plain http through a forwarding proxy)."""

    async def http_error_407(
        self, req: Request, response: Response, code: int, msg: str, headers: Any
    ) -> Response | None:
        """Repeat the request with proxy credentials, once."""
        return await self._retry(req, response, headers)


class ProxyDigestAuthHandler(_ProxyMixin, _DigestMixin):
    """Answer a proxy's 407 Digest challenge."""

    handler_order = 490

    async def http_error_407(
        self, req: Request, response: Response, code: int, msg: str, headers: Any
    ) -> Response | None:
        """Repeat the request with a proxy digest, once."""
        return await self._retry(req, response, headers)
