"""Test helpers for transports: the conformance suite and the SIGKILL harness.

Subclass :class:`TransportConformance` in a test module, name the subclass
``Test...`` and implement :meth:`~TransportConformance.transport_url` (plus
:meth:`~TransportConformance.transport_options` for options); pytest then
runs every ``test_`` method against your transport, skipping what its
:class:`~transports.Capabilities` rule out::

    from transports.testing import TransportConformance

    class TestMyBroker(TransportConformance):
        def transport_url(self) -> str:
            return "mybroker://localhost/test"

:func:`run_sigkill_test` publishes 10,000 messages while killing consumer
processes at random 100 times and reports what was lost and duplicated.
Needs pytest.
"""

from __future__ import annotations

from ._conformance import TransportConformance as TransportConformance
from ._conformance import collect as collect
from ._conformance import unique_name as unique_name
from ._sigkill import SigkillReport as SigkillReport
from ._sigkill import run_sigkill_test as run_sigkill_test

__all__ = [
    "SigkillReport",
    "TransportConformance",
    "collect",
    "run_sigkill_test",
    "unique_name",
]
