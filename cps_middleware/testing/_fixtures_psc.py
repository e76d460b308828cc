"""pytest fixtures: a real OpenID provider configured like Pro Santé Connect.

* ``cps_psc_provider`` (session) — a started :class:`PscTestProvider`
  (panva's ``oidc-provider`` under Node, TLS on 127.0.0.1 with an ephemeral
  port, stopped by PID), trusting the ``cps_pki`` organisation CA and knowing
  the holders of the ``cps_card`` / ``cps4_card`` test cards;
* ``cps_psc`` — the same provider with its test approver reset (every
  practitioner approves after 300 ms).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.psc_provider import PscTestProvider
from cps_middleware.testing.servers import ServerPki


@pytest.fixture(scope="session")
def cps_psc_provider(cps_pki: TestPki, cps_server_pki: ServerPki) -> Iterator[PscTestProvider]:
    holders = (
        TestHolder(),
        TestHolder(
            given_name="MARIE",
            surname="PHARMA-TEST",
            profession_code=21,
            id_number="10009876543",
            card_number="8025000001/2800000002",
        ),
    )
    with PscTestProvider(cps_pki, cps_server_pki, holders=holders) as provider:
        yield provider


@pytest.fixture
def cps_psc(cps_psc_provider: PscTestProvider) -> PscTestProvider:
    cps_psc_provider.reset_approver()
    return cps_psc_provider
