"""uvicorn's h11 protocol with a deadline for request headers (imported only to serve)."""

from __future__ import annotations

import asyncio
from typing import Optional

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers take over ``seconds``
    (uvicorn times out idle keep-alive connections, but not a request that trickles in)."""

    seconds: float = 10.0
    """Set by the server from ``--header-timeout`` (a class attribute: uvicorn builds one protocol per connection)."""
    header_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # headers complete: a request is being handled
        elif self.header_timer is None:
            self._arm()  # bytes of the next request began arriving

    def on_response_complete(self) -> None:
        self._disarm()  # uvicorn's keep-alive timeout covers the idle time from here
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.header_timer = self.loop.call_later(self.seconds, self._expire)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expire(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
