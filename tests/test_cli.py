"""The ``cps`` command, run in-process through ``main(argv)`` on real test cards and readers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cps_middleware.cli import EXIT_ERROR, EXIT_OK, EXIT_PIN, EXIT_PROBLEM, EXIT_USAGE, main
from cps_middleware.diagnostics import DiagnosticRun
from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.testcard import CpsTestCard
from cps_middleware.testing.vpcd import vpcd_reader_name

Capture = pytest.CaptureFixture[str]
READER = vpcd_reader_name(35967)


def _run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_card(cps_card_factory: Callable[..., CpsTestCard]) -> CpsTestCard:
    holder = TestHolder(given_name="CLI", surname="COMMANDE-TEST",
                        id_number="10000000096", card_number="8025000001/2800000096")
    return cps_card_factory(holder=holder, name="cli-card")


def _card_args(card: CpsTestCard) -> list[str]:
    return ["--module", card.module_path, "--serial", card.serial]


def test_help_and_usage_errors(capsys: Capture) -> None:
    code, out, _err = _run(capsys, "--help")
    assert code == EXIT_OK and "Codes de sortie" in out
    code, out, _err = _run(capsys, "--help", "--lang", "en")
    assert code == EXIT_OK and "Exit codes" in out
    code, _out, err = _run(capsys, "no-such-command")
    assert code == EXIT_USAGE and "choix invalide" in err
    code, _out, err = _run(capsys, "--lang", "en", "no-such-command")
    assert code == EXIT_USAGE and "invalid choice" in err
    code, _out, err = _run(capsys, "pin")
    assert code == EXIT_USAGE
    code, _out, err = _run(capsys, "pin", "verify", "1234")  # a PIN is never an argument
    assert code == EXIT_USAGE and "arguments non reconnus" in err


def test_library_error_is_one_line_with_hint_traceback_only_with_debug(capsys: Capture) -> None:
    code, out, err = _run(capsys, "--lang", "en", "--module", "/nonexistent/libcps3_pkcs11_lux.so",
                          "info")
    assert code == EXIT_ERROR and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cps: error: ")
    assert "/nonexistent/libcps3_pkcs11_lux.so (missing)" in lines[0]
    assert "install the CPS middleware" in lines[0]  # the hint
    assert "Traceback" not in err
    # French (the default): the meaning and what to do, then the technical facts.
    code, out, err = _run(capsys, "--module", "/nonexistent/libcps3_pkcs11_lux.so", "info")
    lines = err.strip().splitlines()
    assert code == EXIT_ERROR and out == "" and len(lines) == 1
    assert lines[0].startswith("cps : erreur : Le logiciel de la carte (module PKCS#11) n'a pas "
                               "pu être chargé — installez le logiciel de la carte CPS")
    assert "(détail technique : " in lines[0] and "/nonexistent/libcps3_pkcs11_lux.so" in lines[0]
    code, _out, err = _run(capsys, "info", "--debug", "--module", "/nonexistent/x.so")
    assert code == EXIT_ERROR and "Traceback" in err and "ModuleLoadError" in err


@pytest.mark.pcsc
def test_readers_json(capsys: Capture) -> None:
    code, out, _err = _run(capsys, "readers", "--json", "--reader", "35967")
    assert code == EXIT_OK
    readers = json.loads(out)
    assert READER in [r["reader"] for r in readers]


def test_info_and_certs(cli_card: CpsTestCard, capsys: Capture, tmp_path: Path) -> None:
    code, out, _err = _run(capsys, "info", "--json", *_card_args(cli_card))
    assert code == EXIT_OK
    info = json.loads(out)
    assert info["holder"]["display_name"] == "CLI COMMANDE-TEST"
    assert info["holder"]["ps_id_nat"] == "810000000096"
    assert info["pin_status"] == "ok" and info["pin_tries_left"] == 3
    assert {c["usage"] for c in info["certificates"]} >= {"auth", "sign"}

    code, out, _err = _run(capsys, "info", *_card_args(cli_card))
    assert code == EXIT_OK and "CLI COMMANDE-TEST" in out and "Médecin" in out

    code, out, _err = _run(capsys, "certs", "--json", "--export", str(tmp_path / "x"),
                           *_card_args(cli_card))
    assert code == EXIT_OK
    rows = json.loads(out)
    files = {r["label"]: Path(r["file"]) for r in rows}
    auth = files["Certificat d'Authentification CPS"].read_bytes()
    assert auth.startswith(b"-----BEGIN CERTIFICATE-----")
    assert auth == cli_card.credentials.authentication.pem


def test_pin_status_verify_and_lock(cli_card: CpsTestCard, capsys: Capture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    args = [*_card_args(cli_card), "--lang", "en"]
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "pin", *args, "verify")
    assert code == EXIT_OK and "PIN correct" in out

    monkeypatch.setattr("sys.stdin", io.StringIO("0000\n"))
    code, out, err = _run(capsys, "pin", *args, "verify")
    assert code == EXIT_PIN and "2 tries left" in err and "0000" not in err + out

    monkeypatch.setattr("sys.stdin", io.StringIO("0000\n"))
    code, _out, err = _run(capsys, "pin", *args, "verify")
    assert code == EXIT_PIN and "1 try left" in err

    # The final try is refused unless asked for explicitly: no try is spent.
    monkeypatch.setattr("sys.stdin", io.StringIO("0000\n"))
    code, _out, err = _run(capsys, "pin", *args, "verify")
    assert code == EXIT_PIN and "--allow-final-try" in err
    code, out, _err = _run(capsys, "pin", *args, "status", "--json")
    assert json.loads(out) == {"pin_status": "final_try", "tries_left": 1}

    monkeypatch.setattr("sys.stdin", io.StringIO("0000\n"))
    code, _out, err = _run(capsys, "pin", *args, "verify", "--allow-final-try")
    assert code == EXIT_PIN
    code, out, _err = _run(capsys, "pin", *args, "status")
    assert code == EXIT_PROBLEM and out.strip() == "PIN: blocked (0 tries left)"
    code, out, _err = _run(capsys, "pin", "status", *_card_args(cli_card))
    assert code == EXIT_PROBLEM and out.strip() == "Code porteur : bloqué (0 essai(s) restant(s))"

    monkeypatch.setattr("sys.stdin", io.StringIO("12345678\n4321\n4321\n"))
    code, out, _err = _run(capsys, "pin", *args, "unblock")
    assert code == EXIT_OK and "unblocked" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("4321\n1234\n1234\n"))
    code, out, _err = _run(capsys, "pin", *args, "change")
    assert code == EXIT_OK and "changed" in out
    code, out, _err = _run(capsys, "pin", *args, "status", "--json")
    assert json.loads(out) == {"pin_status": "ok", "tries_left": 3}


def test_validate_files(cli_card: CpsTestCard, cps_pki: TestPki, capsys: Capture,
                        tmp_path: Path) -> None:
    pem = serialization.Encoding.PEM
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "auth.pem").write_bytes(cli_card.credentials.authentication.pem)
    (tmp_path / "certs" / "sign.der").write_bytes(cli_card.credentials.signature.der)
    (tmp_path / "certs" / "junk.cer").write_bytes(b"not a certificate")
    root = tmp_path / "root.pem"
    root.write_bytes(b"".join(c.certificate.public_bytes(pem)  # the TEST hierarchy bundle
                              for c in (cps_pki.root, cps_pki.intermediate)))
    crls = tmp_path / "crls.pem"
    crls.write_bytes(b"".join(cps_pki.crl(ca).public_bytes(pem)
                              for ca in ("root", "intermediate")))
    code, out, _err = _run(capsys, "validate", str(tmp_path / "certs"), "--trust", "test",
                           "--trust-file", str(root), "--crl", str(crls), "--json")
    assert code == EXIT_PROBLEM  # the junk file
    data = json.loads(out)
    by_file = {Path(r["file"]).name: r for r in data["results"]}
    assert by_file["auth.pem"]["status"] == "VALID"
    assert by_file["sign.der"]["status"] == "VALID"
    assert by_file["junk.cer"]["status"] == "MALFORMED"
    assert data["counts"] == {"VALID": 2, "MALFORMED": 1}
    (tmp_path / "certs" / "junk.cer").unlink()
    code, out, _err = _run(capsys, "validate", str(tmp_path / "certs"), "--trust", "test",
                           "--trust-file", str(root), "--crl", str(crls))
    assert code == EXIT_OK and "VALID" in out
    # The same TEST card against production IGC-Santé: not trusted.
    code, out, _err = _run(capsys, "validate", str(tmp_path / "certs"))
    assert code == EXIT_PROBLEM and "UNKNOWN_ISSUER" in out


def test_diag_json_and_html(cli_card: CpsTestCard, capsys: Capture, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    code, out, _err = _run(capsys, "diag", "--json", "--lang", "en", "--html", str(report),
                           "--reader", READER, "--module", cli_card.module_path)
    run = DiagnosticRun.from_json(out)
    assert run.lang == "en"
    assert run.result("pkcs11.module").status.value == "ok"
    assert code == (EXIT_PROBLEM if run.status.value == "error" else EXIT_OK)
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "CPS card diagnostic" in page
    code, out, _err = _run(capsys, "diag", "--reader", READER, "--module", cli_card.module_path)
    assert "Diagnostic de la carte CPS" in out


def test_testcard_commands(capsys: Capture, tmp_path: Path) -> None:
    cards = str(tmp_path / "cards")
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "create", "--name", "t1",
                           "--json")
    assert code == EXIT_OK and json.loads(out)["name"] == "t1"
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "list", "--json")
    listed = json.loads(out)
    assert [c["name"] for c in listed] == ["t1"] and listed[0]["present"] is True
    assert _run(capsys, "testcard", "--cards-dir", cards, "remove", "t1")[0] == EXIT_OK
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "list", "--json")
    assert json.loads(out)[0]["present"] is False
    assert _run(capsys, "testcard", "--cards-dir", cards, "insert", "t1")[0] == EXIT_OK
    assert _run(capsys, "testcard", "--cards-dir", cards, "delete", "t1")[0] == EXIT_OK
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "list", "--json")
    assert json.loads(out) == []
    code, _out, err = _run(capsys, "testcard", "--cards-dir", cards, "delete", "t1")
    assert code == EXIT_ERROR and "no test card named 't1'" in err


def test_diag_serve_prints_a_tokenised_loopback_url() -> None:
    import http.client
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "cps_middleware.cli", "diag", "--serve", "--reader", READER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Diagnostic : http://127.0.0.1:"), line
        url = line.split(" : ", 1)[1].strip()
        hostport, _slash, rest = url[len("http://"):].partition("/")
        token = rest.strip("/")
        assert len(token) >= 32
        port = int(hostport.split(":")[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/{token}/")
        resp = conn.getresponse()
        assert resp.status == 200 and b"Diagnostic de la carte CPS" in resp.read()
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
        conn.close()
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.pcsc
def test_demo_end_to_end() -> None:
    # Its duration (goal: under 30 s) is measured by benchmarks/bench_demo.py.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CPS_TEST_CARDS_DIR"}
    proc = subprocess.run(
        [sys.executable, "-m", "cps_middleware.cli", "--lang", "en", "demo"],
        env=dict(env, COLUMNS="160"), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    out = proc.stdout
    for step in ("Creating a CPS test card", "Discovering the cards", "Holder and PIN state",
                 "Logging in with the PIN", "Selecting the authentication certificate",
                 "Validating the chain", "Test SSL against the local mutual-TLS server",
                 "Card diagnostic"):
        assert step in out
    assert "JEAN MEDECIN-TEST" in out
    assert "Valid certificate: chains to" in out and "the server accepted the card" in out
    assert "Everything works. 13 OK, 0 warning(s), 0 error(s), 0 not checked" in out


def test_cards_json(cli_card: CpsTestCard, capsys: Capture) -> None:
    code, out, _err = _run(capsys, "cards", "--json", "--module", cli_card.module_path)
    assert code == EXIT_OK
    cards = {c["serial"]: c for c in json.loads(out) if c["serial"]}
    mine = cards[cli_card.serial]
    assert mine["is_cps"] is True
    assert mine["holder"]["ps_id_nat"] == "810000000096"


def test_test_ssl_command(cli_card: CpsTestCard, cps_tls_server: object,
                          cps_tls_server_factory: Callable[..., object],
                          capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    url, ca = cps_tls_server.url, str(cps_tls_server.ca_file)  # type: ignore[attr-defined]
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "test-ssl", url, "--cafile", ca, "--json",
                           *_card_args(cli_card))
    assert code == EXIT_OK
    report = json.loads(out)
    assert report["ok"] is True and report["protocol"] == "TLSv1.2"
    assert report["holder"]["ps_id_nat"] == "810000000096"

    stranger = TestPki(seed="diagnostics-other-hierarchy")
    server = cps_tls_server_factory(client_cas=[stranger.intermediate.certificate])
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "test-ssl", server.url,  # type: ignore[attr-defined]
                           "--cafile", str(server.ca_file),  # type: ignore[attr-defined]
                           *_card_args(cli_card))
    assert code == EXIT_PROBLEM and "le serveur a refusé le certificat de la carte" in out

    code, _out, err = _run(capsys, "test-ssl", "http://example.org/", *_card_args(cli_card))
    assert code == EXIT_ERROR and "https://" in err
