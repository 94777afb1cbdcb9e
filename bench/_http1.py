"""A lean HTTP/1.1 keep-alive client on asyncio for the benchmarks' login driver.

Why it exists: the complete-login benchmark drives 8 requests per login from a Python
process on the same 2 cores as the server. With ``httpx.AsyncClient`` the driver spent
about 15-18 ms of CPU per login (request and URL models, header normalisation, the
``http.cookiejar`` policy, the connection pool, httpcore's state machines), so against
the bare app it topped out below 100 logins/s on a whole core: the load generator, not
the server, capped the measurement. This client does only what the driver needs, with
``httptools`` (llhttp, the parser uvicorn uses) parsing the answers.

What it does:

* one persistent connection per ``Http1Client`` to a plain ``http://`` loopback server,
  requests one after another on it (a second concurrent request is an error);
* a reused connection the server closed is replaced transparently, but only when not one
  byte of the answer had arrived; a request whose answer was cut short is never sent
  again: it raises ``Http1Error``;
* ``get``/``post`` with ``params``, ``json`` (compact, like httpx 0.28), ``data``
  (``urlencode``), ``content``, ``headers`` and ``auth=(user, password)`` (HTTP Basic: the
  base64 of ``user:password`` exactly as httpx sends it, no form-encoding of the parts);
* a cookie jar per client (``Set-Cookie`` stored, ``Max-Age``/``Expires`` honoured, Path
  matched; ``Secure`` cookies are kept but, like ``http.cookiejar``, never sent over
  plain http);
* every request bounded by ``timeout`` seconds (connect, send, answer), 30 by default;
* no redirects followed, no compression, no proxies, no TLS.

Every connection or protocol failure raises ``Http1Error``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json as jsonlib
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast, overload
from urllib.parse import urlencode, urlsplit

import httptools

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "eid-bench-http1"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

Params = Mapping[str, str] | Sequence[tuple[str, str]]


class Http1Error(Exception):
    """A connection or protocol failure: refused, reset, closed mid-answer, timed out, malformed."""


class _Closed(Http1Error):
    """The connection closed before the answer was complete."""

    def __init__(self, message: str, *, answered: int) -> None:
        super().__init__(message)
        self.answered = answered
        """Bytes of the answer received before the close (0: the request may be sent again)."""


class Headers:
    """Response headers in arrival order; lookups ignore case, repeated fields join with ", "."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        joined: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self._map = joined

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def get_list(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field, value in self._items if field.lower() == key]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """One answer: status, headers and the whole body."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in (self.headers.get("content-type") or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


@dataclass(slots=True)
class _Cookie:
    value: str
    path: str
    secure: bool
    expires: float | None


def _default_path(request_path: str) -> str:
    """RFC 6265 5.1.4: the request path up to, not including, its last '/' ('/' if none)."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rfind("/")]


def _path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    )


class Cookies:
    """The cookies of one client (one host): keyed by name and path, as RFC 6265 keeps them."""

    def __init__(self) -> None:
        self._jar: dict[tuple[str, str], _Cookie] = {}

    def clear(self) -> None:
        self._jar.clear()

    def __len__(self) -> int:
        return len(self._jar)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of a cookie by name (any path)."""
        return next((c.value for (n, _p), c in self._jar.items() if n == name), default)

    def set(self, name: str, value: str, path: str = "/") -> None:
        self._jar[(name, path)] = _Cookie(value, path, False, None)

    def store(self, set_cookie: str, request_path: str) -> None:
        """Take one ``Set-Cookie`` field (RFC 6265 5.2); an expiry in the past deletes the cookie."""
        pair, *attributes = set_cookie.split(";")
        name, has_value, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not has_value or not name:
            return
        path = _default_path(request_path)
        secure = False
        expires: float | None = None
        max_age: float | None = None
        for attribute in attributes:
            key, _, argument = attribute.partition("=")
            key, argument = key.strip().lower(), argument.strip()
            if key == "max-age":
                digits = argument[1:] if argument.startswith("-") else argument
                if digits.isdigit():
                    delta = int(argument)
                    max_age = time.time() + delta if delta > 0 else float("-inf")
            elif key == "expires":
                with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
                    expires = email.utils.parsedate_to_datetime(argument).timestamp()
            elif key == "path":
                path = argument if argument.startswith("/") else _default_path(request_path)
            elif key == "secure":
                secure = True
        if max_age is not None:
            expires = max_age
        if expires is not None and expires <= time.time():
            self._jar.pop((name, path), None)
            return
        self._jar[(name, path)] = _Cookie(value, path, secure, expires)

    def header(self, request_path: str) -> str | None:
        """The ``Cookie`` field for a plain-http request to ``request_path`` (longest paths first)."""
        if not self._jar:
            return None
        now: float | None = None
        chosen: list[tuple[str, _Cookie]] = []
        for (name, _path), cookie in list(self._jar.items()):
            if cookie.expires is not None:
                now = time.time() if now is None else now
                if cookie.expires <= now:
                    del self._jar[(name, cookie.path)]
                    continue
            if not cookie.secure and _path_matches(request_path, cookie.path):
                chosen.append((name, cookie))
        if not chosen:
            return None
        chosen.sort(key=lambda item: -len(item[1].path))
        return "; ".join(f"{name}={cookie.value}" for name, cookie in chosen)


class _Connection(asyncio.Protocol):
    """One TCP connection and its response parser; at most one request outstanding."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[Response] | None = None
        self.answered = 0
        self.fields: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.headers_done = False
        self.framed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self._abort(Http1Error(f"{len(data)} bytes received with no request outstanding"))
            return
        self.answered += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._abort(Http1Error("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._abort(Http1Error(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        status = self.parser.get_status_code() if self.headers_done else 0
        if self.headers_done and not self.framed and status >= 200 and status not in (204, 304):
            self._complete(status, keep_alive=False)  # an answer delimited by the close
            return
        self.waiter = None
        reason = f": {exc!r}" if exc else ""
        waiter.set_exception(
            _Closed(
                f"connection closed after {self.answered} bytes of the answer{reason}", answered=self.answered
            )
        )

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer in the same read as the first one
            raise Http1Error("an answer with no request outstanding")
        self.fields, self.body, self.headers_done, self.framed = [], [], False, False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.framed = any(n.lower() in ("content-length", "transfer-encoding") for n, _v in self.fields)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            return
        self._complete(status, keep_alive=self.parser.should_keep_alive())

    # ours

    def _complete(self, status: int, *, keep_alive: bool) -> None:
        waiter, self.waiter = self.waiter, None
        response = Response(status, Headers(self.fields), b"".join(self.body))
        self.fields, self.body = [], []
        if not keep_alive:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if waiter is None:
            self._abort(Http1Error("an answer with no request outstanding"))
        elif not waiter.done():
            waiter.set_result(response)

    def _abort(self, error: Http1Error) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if self.transport is not None:
            self.transport.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def exchange(self, data: bytes, deadline: float) -> Response:
        assert self.transport is not None and self.waiter is None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self.waiter, self.answered = waiter, 0

        def expire() -> None:
            if not waiter.done():
                self._abort(Http1Error(f"no complete answer within the timeout ({self.answered} bytes)"))

        timer = loop.call_at(deadline, expire)
        try:
            self.transport.write(data)
            return await waiter
        except BaseException:
            if self.waiter is waiter:  # cancelled while waiting: the answer would arrive for nobody
                self._abort(Http1Error("request cancelled"))
            raise
        finally:
            timer.cancel()


class Http1Client:
    """HTTP/1.1 to one loopback ``http://host:port``, on one kept-alive connection, with cookies."""

    def __init__(
        self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT, headers: Mapping[str, str] | None = None
    ) -> None:
        parts = urlsplit(base_url)
        host = parts.hostname
        if parts.scheme != "http" or host not in _LOOPBACK or host is None or parts.query or parts.fragment:
            raise ValueError(f"Http1Client speaks plain http to loopback only, not {base_url!r}")
        self.host = host
        self.port = parts.port or 80
        self.timeout = timeout
        self.cookies = Cookies()
        self._prefix = parts.path.rstrip("/")
        self._defaults = {"host": ("Host", parts.netloc), "accept": ("Accept", "*/*")}
        self._defaults["user-agent"] = ("User-Agent", USER_AGENT)
        for name, value in (headers or {}).items():
            self._defaults[name.lower()] = (name, value)
        self._connection: _Connection | None = None
        self._busy = False

    async def __aenter__(self) -> Http1Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    async def get(
        self, path: str, *, params: Params | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return await self.request("GET", path, params=params, headers=headers)

    async def post(
        self,
        path: str,
        *,
        json: Any = None,
        data: Params | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        params: Params | None = None,
    ) -> Response:
        body: bytes | str
        content_type: str | None = None
        if sum(x is not None for x in (json, data, content)) > 1:
            raise ValueError("give one of json, data and content")
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            content_type = "application/json"
        elif data is not None:
            body, content_type = urlencode(data, doseq=True), "application/x-www-form-urlencoded"
        else:
            body = b"" if content is None else content
        return await self.request(
            "POST", path, params=params, headers=headers, content=body, content_type=content_type, auth=auth
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        content_type: str | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response:
        """Send one request and read its whole answer (a 3xx is returned, not followed)."""
        if self._busy:
            raise Http1Error("an Http1Client sends one request at a time")
        self._busy = True
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            target, request_path = self._target(path, params)
            data = self._encode(method, target, request_path, headers, content, content_type, auth)
            for attempt in range(2):
                connection = self._connection
                reused = connection is not None and not connection.closed
                if connection is None or connection.closed:
                    connection = await self._connect(deadline)
                try:
                    response = await connection.exchange(data, deadline)
                except _Closed as exc:
                    if reused and attempt == 0 and exc.answered == 0:
                        continue  # the server had closed the idle connection: nothing was answered
                    raise
                for field in response.headers.get_list("set-cookie"):
                    self.cookies.store(field, request_path)
                return response
            raise AssertionError("unreachable")
        finally:
            self._busy = False

    def _target(self, path: str, params: Params | None) -> tuple[str, str]:
        if not path.startswith("/"):
            raise ValueError(f"a path on the server, starting with '/', not {path!r}")
        target = self._prefix + path
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        return target, target.partition("?")[0]

    def _encode(
        self,
        method: str,
        target: str,
        request_path: str,
        headers: Mapping[str, str] | None,
        content: bytes | str | None,
        content_type: str | None,
        auth: tuple[str, str] | None,
    ) -> bytes:
        fields = dict(self._defaults)
        if content_type is not None:
            fields["content-type"] = ("Content-Type", content_type)
        if headers:
            for name, value in headers.items():
                fields[name.lower()] = (name, value)
        if auth is not None:
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            fields["authorization"] = ("Authorization", "Basic " + credentials)
        if "cookie" not in fields:
            cookie = self.cookies.header(request_path)
            if cookie is not None:
                fields["cookie"] = ("Cookie", cookie)
        body = content.encode() if isinstance(content, str) else content
        if body is not None:
            fields["content-length"] = ("Content-Length", str(len(body)))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields.values())
        lines = len(fields) + 1
        if head.count("\r") != lines or head.count("\n") != lines:
            raise ValueError("CR or LF inside the request line or a header")
        try:
            encoded = (head + "\r\n").encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the request line and headers must be ASCII: {exc}") from exc
        return encoded + body if body else encoded

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _transport, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port), max(0.0, deadline - loop.time())
            )
        except TimeoutError as exc:
            raise Http1Error(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise Http1Error(f"connect to {self.host}:{self.port}: {exc}") from exc
        self._connection = connection
        return connection
