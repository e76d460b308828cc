"""pytest fixtures: local mutual-TLS servers (127.0.0.1, ephemeral ports).

* ``cps_server_pki`` (session) — the server CA and ``localhost`` certificate;
* ``cps_tls_server`` (session) — a :class:`MutualTlsServer` that requires a
  client certificate from ``cps_pki`` and echoes the client's identity as JSON;
* ``cps_tls_server_factory`` — ``factory(**MutualTlsServer kwargs)`` for other
  settings (``client_cert="optional"`` / ``"none"``, TLS version bounds),
  stopped at the end of the test;
* ``cps_openssl_server_factory`` — ``factory(**OpenSslServer kwargs)``:
  ``openssl s_server -Verify 1 -www`` trusting ``cps_pki``, stopped by PID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer, ServerPki


@pytest.fixture(scope="session")
def cps_server_pki() -> ServerPki:
    return ServerPki()


@pytest.fixture(scope="session")
def cps_tls_server(cps_pki: TestPki, cps_server_pki: ServerPki) -> Iterator[MutualTlsServer]:
    with MutualTlsServer(list(cps_pki.ca_certificates), server_pki=cps_server_pki) as server:
        yield server


_Server = TypeVar("_Server", MutualTlsServer, OpenSslServer)


def _server_factory(
    server_class: type[_Server], cps_pki: TestPki, cps_server_pki: ServerPki
) -> Iterator[Callable[..., _Server]]:
    """``factory(**kwargs)``: a started *server_class* trusting ``cps_pki``; all stopped after."""
    started: list[_Server] = []

    def factory(**kwargs: object) -> _Server:
        kwargs.setdefault("server_pki", cps_server_pki)
        kwargs.setdefault("client_cas", list(cps_pki.ca_certificates))
        server = server_class(**kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def cps_tls_server_factory(
    cps_pki: TestPki, cps_server_pki: ServerPki
) -> Iterator[Callable[..., MutualTlsServer]]:
    yield from _server_factory(MutualTlsServer, cps_pki, cps_server_pki)


@pytest.fixture
def cps_openssl_server_factory(
    cps_pki: TestPki, cps_server_pki: ServerPki
) -> Iterator[Callable[..., OpenSslServer]]:
    yield from _server_factory(OpenSslServer, cps_pki, cps_server_pki)
