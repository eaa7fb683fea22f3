"""What the HTTP service refuses before a request reaches the app: oversized or slow headers, slow bodies, idle
connections, and (with a token) the API description to a client without it.

uvicorn's httptools protocol, the fastest here, buffers a header of any size (a 100 MB header blocked
``/health`` for 16 s and four of them took a worker to 1 GB) and never times out a connection that
trickles bytes or says nothing (1,200 such connections were all held). :class:`GuardedHttpToolsProtocol`
counts the raw bytes of each request's head before the parser sees them (431 beyond
``MAX_HEADER_BYTES``), gives the head ``HEAD_SECONDS`` and the body ``BODY_SECONDS`` from their first
byte (408 after), and closes a connection that sends nothing for ``timeout_keep_alive`` from the
moment it opens, as uvicorn does only between requests. A request under way is never cut by the
keep-alive timer: that timer runs only while no request is in flight.
"""

from __future__ import annotations

import hmac

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Bytes of a request line plus headers: browsers and proxies stay under 16 KiB; nginx's default is 8 KiB.
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a client has to send a request's head, and then its body, once it has started.
HEAD_SECONDS = 10.0
BODY_SECONDS = 30.0
#: Idle seconds before the server closes a kept-alive connection. Longer than the pools of common clients
#: (httpx 5 s, browsers and proxies about 60 s), so that the client, not the server, ends an idle
#: connection: a server closing it just as the client reuses it fails that request (uvicorn's default is 5 s).
KEEP_ALIVE_SECONDS = 75
#: Set to 1 to leave /docs and /openapi.json open to clients without the token.
PUBLIC_DOCS_VARIABLE = "LEAD_SCORING_PUBLIC_DOCS"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on header size, header and body time, and idle connections."""

    max_header_bytes = MAX_HEADER_BYTES
    head_seconds = HEAD_SECONDS
    body_seconds = BODY_SECONDS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_bytes = 0
        self._phase = "idle"  # idle -> head -> body -> (response) -> idle
        self._deadline = None
        # uvicorn arms the idle timer only after a response: a connection that never speaks would stay.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._phase, self._head_bytes = "head", 0
            self._arm(self.head_seconds, "request head")
        if self._phase in ("head", "response"):  # "response": a pipelined next head arrives early
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                return self._refuse(431, f"request line and headers larger than {self.max_header_bytes} bytes")
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._arm(self.body_seconds, "request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "response"
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._phase = "idle"
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, what: str, seconds: float) -> None:
        self._deadline = None
        if self._phase in ("head", "body") and not self.transport.is_closing():
            self._refuse(408, f"{what} not received within {seconds:g} seconds")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a one-line reason and close: the app never sees this request."""
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it started on the body, reads a disconnect
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = (f'{{"detail": [{{"field": "{"header" if status == 431 else "request"}", '
                f'"problem": "{message}"}}]}}').encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))
        self._phase = "closed"
        self.transport.close()


class TokenGate:
    """ASGI middleware: ``paths`` answer 401 without ``Authorization: Bearer <token>``, as ``/score`` does."""

    def __init__(self, app, *, token: str, paths: tuple[str, ...]):
        self.app, self.token, self.paths = app, token.encode(), paths

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in self.paths:
            if not bearer_matches(scope.get("headers", ()), self.token):
                from fastapi.responses import JSONResponse

                response = JSONResponse(status_code=401, headers={"WWW-Authenticate": "Bearer"}, content={
                    "detail": [{"field": "header.Authorization", "problem": "missing or wrong bearer token"}]})
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def bearer_matches(headers, token: bytes) -> bool:
    """Whether ``Authorization: Bearer <token>`` is among the ASGI ``headers``, read as FastAPI's ``HTTPBearer``
    reads it: the first such header, the scheme in any case, the token with surrounding spaces stripped."""
    given = next((value for name, value in headers if name.lower() == b"authorization"), b"")
    scheme, _, credentials = given.partition(b" ")
    credentials = credentials.strip()
    return bool(credentials) and scheme.lower() == b"bearer" and hmac.compare_digest(credentials, token)
