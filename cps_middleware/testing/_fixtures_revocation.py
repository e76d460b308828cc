"""pytest fixtures: real revocation servers on loopback.

* ``cps_revocation_server`` — a started :class:`RevocationHttpServer` (CRLs,
  hand-made OCSP responses; slow, oversized or broken on demand), stopped
  after the test;
* ``cps_ocsp_responder_factory`` — ``factory(**OpenSslOcspResponder kwargs)``
  starts ``openssl ocsp`` (for ``cps_pki``'s intermediate CA, signed by that
  CA unless ``signer=`` says otherwise); every responder is stopped by PID
  after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.revocation_servers import OpenSslOcspResponder, RevocationHttpServer


@pytest.fixture
def cps_revocation_server() -> Iterator[RevocationHttpServer]:
    with RevocationHttpServer() as server:
        yield server


@pytest.fixture
def cps_ocsp_responder_factory(
    cps_pki: TestPki,
) -> Iterator[Callable[..., OpenSslOcspResponder]]:
    started: list[OpenSslOcspResponder] = []

    def factory(**kwargs: object) -> OpenSslOcspResponder:
        kwargs.setdefault("ca", cps_pki.intermediate.certificate)
        kwargs.setdefault("signer", cps_pki.intermediate)
        responder = OpenSslOcspResponder(**kwargs)  # type: ignore[arg-type]
        started.append(responder)
        return responder.start()

    yield factory
    for responder in started:
        responder.stop()
