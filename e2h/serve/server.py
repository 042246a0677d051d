"""uvicorn for the service, with the slow-socket limits from the serve config.

    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` (``serve.keep_alive_timeout_s``), but has
no limit on how long a request may take to ARRIVE: a client that opens a connection and sends nothing, or sends a
header byte every few seconds, holds its socket forever (a slow-header flood exhausts file descriptors). The
protocol below closes a connection whose request has not fully arrived (headers and body)
``serve.request_timeout_s`` after the connection opened or the request's first byte. Time spent answering does
not count: the timer stops once the request is in.
"""

from __future__ import annotations

import asyncio
import logging

from e2h.config import ServeSection

log = logging.getLogger("e2h.serve")


def request_timeout_protocol(seconds: float) -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol, closing connections whose request does not arrive within ``seconds``;
    None when httptools is missing (uvicorn's pure-Python h11 protocol is used as it is)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class RequestTimeoutProtocol(HttpToolsProtocol):
        request_timeout_s = seconds
        _arrival_timer: asyncio.TimerHandle | None = None

        def _start_arrival_timer(self) -> None:
            self._stop_arrival_timer()
            self._arrival_timer = self.loop.call_later(self.request_timeout_s, self._request_too_slow)

        def _stop_arrival_timer(self) -> None:
            if self._arrival_timer is not None:
                self._arrival_timer.cancel()
                self._arrival_timer = None

        def _request_too_slow(self) -> None:
            self._arrival_timer = None
            if not self.transport.is_closing():
                log.info("closing a connection whose request did not arrive within %g s", self.request_timeout_s)
                self.transport.close()

        def connection_made(self, transport) -> None:  # a connection that never sends a byte is timed too
            super().connection_made(transport)
            self._start_arrival_timer()

        def on_message_begin(self) -> None:  # the next request on a keep-alive connection
            super().on_message_begin()
            if self._arrival_timer is None:
                self._start_arrival_timer()

        def on_message_complete(self) -> None:
            self._stop_arrival_timer()
            super().on_message_complete()

        def connection_lost(self, exc) -> None:
            self._stop_arrival_timer()
            super().connection_lost(exc)

    return RequestTimeoutProtocol


def uvicorn_config(app, settings: ServeSection, log_level: str = "info"):
    """uvicorn.Config binding serve.host:port with the service's connection limits."""
    import uvicorn

    protocol = request_timeout_protocol(settings.request_timeout_s)
    if protocol is None:
        log.warning("httptools is not installed: no serve.request_timeout_s for slow clients (pip install httptools)")
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                          http=protocol or "auto", timeout_keep_alive=settings.keep_alive_timeout_s)
