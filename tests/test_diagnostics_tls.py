"""The Test SSL check of the diagnostic against local mutual-TLS servers, with a test card."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cps_middleware import diagnostics
from cps_middleware.diagnostics import DiagnosticOptions, Status
from cps_middleware.pkcs11 import Pin
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.testing.testcard import CpsTestCard

ONLY = ["tls.test_ssl"]


def _diag(card: CpsTestCard, lang: str = "fr", **kw: object) -> diagnostics.DiagnosticRun:
    opts = DiagnosticOptions(module=card.module_path, token=card.serial, **kw)  # type: ignore[arg-type]
    return diagnostics.run(opts, lang=lang, only=ONLY)


def test_server_accepts_the_card(cps_card: CpsTestCard, cps_tls_server: MutualTlsServer) -> None:
    run = _diag(cps_card, "en", url=cps_tls_server.url, ca_file=str(cps_tls_server.ca_file),
                pin=Pin("1234"))
    tls = run.result("tls.test_ssl")
    assert tls.status is Status.OK, tls
    assert tls.details["protocol"] == "TLSv1.2"  # a CPS3 has no PSS: TLS 1.2, PKCS#1
    assert tls.details["client_signature"] == "rsa_pkcs1 sha256"
    assert tls.details["http_status"] == 200
    assert run.options["pin_given"] is True  # and nothing else of the PIN in the run
    assert "1234" not in str(dict(run.options)) and "1234" not in str(tls.details)
    assert cps_card.state().pin_tries_left == 3


def test_server_rejecting_the_client_certificate(
    cps_card: CpsTestCard, cps_tls_server_factory: Callable[..., MutualTlsServer]
) -> None:
    # A server that trusts another hierarchy only: it refuses the card's certificate.
    stranger = TestPki(seed="diagnostics-other-hierarchy")
    server = cps_tls_server_factory(client_cas=[stranger.intermediate.certificate])
    run = _diag(cps_card, "fr", url=server.url, ca_file=str(server.ca_file), pin=Pin("1234"))
    tls = run.result("tls.test_ssl")
    assert tls.status is Status.ERROR, tls
    assert tls.reason == "tls.client_cert_rejected"
    assert "refusé le certificat" in tls.seen
    assert tls.remedy is not None and tls.remedy.id == "tls_rejected"
    steps = " ".join(tls.remedy.steps)
    assert "72 h" in steps and "0 800 08 32 04" in steps and "0 825 852 000" in steps
    assert "autre ordinateur" in steps


def test_test_ssl_needs_the_pin(cps_card: CpsTestCard, cps_tls_server: MutualTlsServer) -> None:
    tls = _diag(cps_card, url=cps_tls_server.url).result("tls.test_ssl")
    assert tls.status is Status.SKIPPED and tls.reason == "tls.pin_needed"


def test_no_url_no_test_ssl(cps_card: CpsTestCard) -> None:
    tls = _diag(cps_card).result("tls.test_ssl")
    assert tls.status is Status.SKIPPED and tls.reason == "tls.not_requested"


def test_wrong_pin_spends_exactly_one_try(
    cps_card: CpsTestCard, cps_tls_server: MutualTlsServer
) -> None:
    tls = _diag(cps_card, "en", url=cps_tls_server.url, ca_file=str(cps_tls_server.ca_file),
                pin=Pin("9999")).result("tls.test_ssl")
    assert tls.status is Status.ERROR and tls.reason == "tls.pin_incorrect"
    assert tls.details["tries_left"] == 2
    assert tls.remedy is not None and tls.remedy.id == "pin_count_low"
    assert cps_card.state().pin_tries_left == 2


def test_untrusted_server_certificate(
    cps_card: CpsTestCard, cps_tls_server: MutualTlsServer
) -> None:
    # No CA bundle given: the system CAs do not know the local test server's CA.
    tls = _diag(cps_card, "en", url=cps_tls_server.url,
                pin=Pin("1234")).result("tls.test_ssl")
    assert tls.status is Status.ERROR and tls.reason == "tls.server_untrusted"
    assert tls.remedy is not None and tls.remedy.id == "tls_server_untrusted"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung server)."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = srv.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    for c in held:
        c.close()
    srv.close()


def test_a_hanging_server_does_not_hang_the_run(cps_card: CpsTestCard, silent_server: int) -> None:
    t0 = time.monotonic()
    run = _diag(cps_card, "en", url=f"https://127.0.0.1:{silent_server}/", pin=Pin("1234"),
                tls_timeout=1.0)
    assert time.monotonic() - t0 < 10
    tls = run.result("tls.test_ssl")
    assert tls.status is Status.ERROR
    assert tls.reason in ("tls.network", "tls.tls")
    assert "timed out" in str(tls.details["detail"])
    assert tls.remedy is not None and tls.remedy.id == "tls_network"
