"""``cps validate --fetch``: CRLs from a real loopback HTTP server, OCSP from ``openssl ocsp``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cps_middleware.cli import EXIT_OK, EXIT_PROBLEM, main
from cps_middleware.testing.pki import Revocation, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import OpenSslOcspResponder, RevocationHttpServer

Capture = pytest.CaptureFixture[str]
BASE = "http://igc-sante.esante.gouv.fr/CRL/"


@pytest.fixture(scope="module")
def leaves(cps_pki: TestPki) -> tuple[x509.Certificate, x509.Certificate]:
    def card(n: int) -> x509.Certificate:
        holder = TestHolder(id_number=f"1000160000{n}", card_number=f"8025000001/28000160{n}")
        return cps_pki.issue_card(holder, key_type="p256").authentication.certificate

    return card(1), card(2)


@pytest.fixture
def files(cps_pki: TestPki, leaves: tuple[x509.Certificate, x509.Certificate],
          tmp_path: Path) -> tuple[Path, Path]:
    pem = serialization.Encoding.PEM
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "good.pem").write_bytes(leaves[0].public_bytes(pem))
    (certs / "revoked.pem").write_bytes(leaves[1].public_bytes(pem))
    bundle = tmp_path / "test-hierarchy.pem"
    bundle.write_bytes(b"".join(c.public_bytes(pem) for c in cps_pki.ca_certificates))
    return certs, bundle


def _run(capsys: Capture, *argv: str) -> tuple[int, dict[str, dict], str]:  # type: ignore[type-arg]
    code = main(list(argv))
    out, err = capsys.readouterr()
    data = json.loads(out) if "--json" in argv else {}
    by_file = {Path(r["file"]).name: r for r in data.get("results", [])}
    return code, by_file, err


def test_validate_fetch_crls_then_cache(
    cps_pki: TestPki, leaves: tuple[x509.Certificate, x509.Certificate],
    files: tuple[Path, Path], cps_revocation_server: RevocationHttpServer,
    tmp_path: Path, capsys: Capture,
) -> None:
    server = cps_revocation_server
    server.publish("/CRL/ACR-FO-TEST.crl", cps_pki.crl("root"))
    server.publish("/CRL/ACI-FO-PP-TEST.crl", cps_pki.crl(
        "intermediate", extra=[Revocation(leaves[1].serial_number)]))
    certs, bundle = files
    argv = ["validate", str(certs), "--trust", "test", "--trust-file", str(bundle), "--fetch",
            "--crl-mirror", f"{BASE}={server.url('/CRL/')}", "--ocsp-url", "none",
            "--cache-dir", str(tmp_path / "cache")]
    code, by_file, _err = _run(capsys, *argv, "--json")
    assert code == EXIT_PROBLEM
    assert by_file["good.pem"]["status"] == "VALID"
    assert by_file["revoked.pem"]["status"] == "REVOKED"
    outcomes = {c["url"]: c["outcome"] for c in by_file["good.pem"]["sources"]["crls"]}
    assert outcomes == {BASE + "ACI-FO-PP-TEST.crl": "downloaded",
                        BASE + "ACR-FO-TEST.crl": "downloaded"}
    # a second run is served by the on-disk cache
    n = len(server.requests)
    code, by_file, err = _run(capsys, *argv, "--json")
    assert {c["outcome"] for c in by_file["good.pem"]["sources"]["crls"]} == {"cached"}
    assert len(server.requests) == n
    # text output: the summary line, in English or French
    code, _, err = _run(capsys, *argv, "--lang", "en")
    assert "2 from the cache" in err and "hard-fail" in err
    code, _, err = _run(capsys, *argv, "--lang", "fr")
    assert "depuis le cache" in err and "mode strict" in err


def test_validate_fetch_ocsp_soft_and_hard_fail(
    cps_pki: TestPki, leaves: tuple[x509.Certificate, x509.Certificate],
    files: tuple[Path, Path], cps_revocation_server: RevocationHttpServer,
    cps_ocsp_responder_factory: Callable[..., OpenSslOcspResponder],
    tmp_path: Path, capsys: Capture,
) -> None:
    server = cps_revocation_server
    server.publish("/CRL/ACR-FO-TEST.crl", cps_pki.crl("root"))  # no card CA CRL: OCSP
    responder = cps_ocsp_responder_factory(
        good=[leaves[0]],
        revoked=[(leaves[1], x509.ReasonFlags.key_compromise,
                  cps_pki.reference_time - dt.timedelta(days=1))],
    )
    certs, bundle = files
    base = ["validate", str(certs), "--trust", "test", "--trust-file", str(bundle), "--fetch",
            "--crl-mirror", f"{BASE}={server.url('/CRL/')}",
            "--cache-dir", str(tmp_path / "cache"), "--json"]
    code, by_file, _err = _run(capsys, *base, "--ocsp-url", responder.url)
    assert by_file["good.pem"]["status"] == "VALID"
    assert by_file["good.pem"]["sources"]["ocsp"][0]["status"] == "good"
    assert by_file["revoked.pem"]["status"] == "REVOKED"
    # the responder goes away
    responder.stop()
    code, by_file, _err = _run(capsys, *base, "--ocsp-url", responder.url, "--fetch-timeout", "1")
    assert by_file["good.pem"]["status"] == "REVOCATION_UNKNOWN"
    code, by_file, _err = _run(capsys, *base, "--ocsp-url", responder.url, "--fetch-timeout",
                               "1", "--soft-fail")
    assert by_file["good.pem"]["status"] == "VALID"
    assert by_file["good.pem"]["sources"]["soft_failed"] is True
    # fetch options without --fetch are a usage mistake
    code = main(["validate", str(certs), "--soft-fail"])
    capsys.readouterr()
    assert code not in (EXIT_OK, EXIT_PROBLEM)
