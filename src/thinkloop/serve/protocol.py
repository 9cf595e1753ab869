"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for a request's headers.

uvicorn times out an idle kept-alive connection, but not one that is sending its headers: a client that
trickles a header line every few seconds (slowloris) holds a connection and a descriptor forever, and a few
hundred of them starve every other client. :class:`HeaderDeadline` closes a connection whose request line and
headers are not complete ``header_seconds`` after it opened (or after the first byte of its next request);
the body has its own deadline in the app (``Settings.body_seconds``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

ENV = "THINKLOOP_SERVE_HEADER_SECONDS"
"""The deadline, for ``--workers`` processes (uvicorn starts them afresh, naming this class by its path)."""


class HeaderDeadline(H11Protocol):
    header_seconds: float = float(os.environ.get(ENV, "10"))
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._waiting() and self._header_timer is None:
            self._arm()  # the first bytes of a kept-alive connection's next request
        super().data_received(data)
        if self.cycle is not before and self.cycle is not None:
            self._disarm()  # the headers are in: the app has the request

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        cycle: RequestResponseCycle | None = self.cycle  # uvicorn annotates it as always set; None before a request
        return cycle is None or cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_seconds, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self._waiting() and not self.transport.is_closing():
            self.transport.close()
