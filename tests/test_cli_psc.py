"""``cps psc login --ciba`` and ``cps psc exchange`` against the local PSC-shaped provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cps_middleware.cli import EXIT_ERROR, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from cps_middleware.testing.pki import TestHolder
from cps_middleware.testing.psc_provider import PscTestProvider
from cps_middleware.testing.testcard import CpsTestCard

Capture = pytest.CaptureFixture[str]
JEAN = TestHolder().ps_idnat


@pytest.fixture
def client_args(cps_psc: PscTestProvider, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> list[str]:
    p12 = tmp_path / "org.p12"
    p12.write_bytes(cps_psc.organisation.pkcs12(b"s3cret"))
    ca = tmp_path / "op-ca.pem"
    ca.write_bytes(cps_psc.ca_pem)
    monkeypatch.setenv("CPS_PSC_P12_PASSWORD", "s3cret")
    return ["--client-id", cps_psc.client_id, "--p12", str(p12), "--env", cps_psc.issuer,
            "--cafile", str(ca)]


def _run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_login_prints_the_holder_and_lifetimes_not_the_tokens(
    capsys: Capture, client_args: list[str]
) -> None:
    code, out, err = _run(capsys, "psc", "login", "--ciba", "--id", JEAN,
                          "--binding-message", "CLI 1", "--lang", "en", *client_args)
    assert code == EXIT_OK, err
    assert "Logged in: JEAN MEDECIN-TEST" in out and "Access token: expires in" in out
    assert "access_token=" not in out and "eyJ" not in out
    assert "CLI 1" in err
    code, out, err = _run(capsys, "psc", "login", "--ciba", "--id", JEAN, "--json",
                          "--show-tokens", *client_args)
    assert code == EXIT_OK, err
    data = json.loads(out)
    assert data["holder"]["ps_id_nat"] == JEAN and data["tokens"]["access_token"]
    assert data["tokens"]["access_token_expires_in"] > 0


def test_login_with_the_card_holder(capsys: Capture, client_args: list[str],
                                    cps_card_factory: Callable[..., CpsTestCard]) -> None:
    card = cps_card_factory(generation="CPS3")
    code, out, err = _run(capsys, "psc", "login", "--ciba", "--card", "--module",
                          card.module_path, "--serial", card.serial, *client_args)
    assert code == EXIT_OK, err
    assert "Connecté : JEAN MEDECIN-TEST" in out


def test_login_refused_and_bad_usage(capsys: Capture, client_args: list[str],
                                     cps_psc: PscTestProvider) -> None:
    cps_psc.approver(JEAN, "deny", delay_ms=100)
    code, _, err = _run(capsys, "psc", "login", "--ciba", "--id", JEAN, "--lang", "fr",
                        *client_args)
    assert code == EXIT_PROBLEM and "a refusé" in err
    code, _, err = _run(capsys, "psc", "login", "--ciba", "--id", "123", *client_args)
    assert code == EXIT_ERROR and "national identifier" in err
    code, _, _ = _run(capsys, "psc", "login", "--id", JEAN, *client_args)
    assert code == EXIT_USAGE  # --ciba is required


def test_exchange(capsys: Capture, client_args: list[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, "psc", "login", "--ciba", "--id", JEAN, "--json",
                          "--show-tokens", *client_args)
    assert code == EXIT_OK, err
    subject = tmp_path / "subject.txt"
    subject.write_text(json.loads(out)["tokens"]["access_token"])
    code, out, err = _run(capsys, "psc", "exchange", "--subject-token-file", str(subject),
                          "--scope", "dmp:read", "--audience", "https://api.dmp.test",
                          "--lang", "en", *client_args)
    assert code == EXIT_OK, err
    assert "Exchanged token for “dmp:read”" in out and "eyJ" not in out
    code, _, err = _run(capsys, "psc", "exchange", "--subject-token-file", str(subject),
                        "--scope", "dmp:delete", *client_args)
    assert code == EXIT_ERROR and "invalid_scope" in err
