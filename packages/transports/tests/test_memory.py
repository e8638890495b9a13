"""The conformance suite over memory://, and what is particular to it."""

from __future__ import annotations

from transports.testing import TransportConformance


class TestMemoryTransport(TransportConformance):
    short_lease = 0.5  # in-process: timings are exact

    def transport_url(self) -> str:
        return "memory://conformance"
