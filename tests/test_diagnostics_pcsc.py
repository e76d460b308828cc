"""Diagnostic checks of the PC/SC part against the real pcscd with vpcd virtual readers.

This file uses the vpcd readers on ports 35967 / 35968 only (other test files
use 35963-35966), and filters the diagnostic to them so that cards inserted by
parallel tests elsewhere do not change the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cps_middleware import diagnostics
from cps_middleware.diagnostics import DiagnosticOptions, Status
from cps_middleware.testing.vpcd import NON_CPS_ATR, SimpleCpsCard, VirtualCard, vpcd_reader_name

pytestmark = pytest.mark.pcsc

PORT = 35967
READER = vpcd_reader_name(PORT)  # "Virtual PCD 35967 00 00"
PCSC_CHECKS = ("pcsc.service", "pcsc.readers", "pcsc.card", "card.atr")


def _run(lang: str = "fr", **kw: object) -> diagnostics.DiagnosticRun:
    return diagnostics.run(DiagnosticOptions(**kw), lang=lang, only=["card.atr"])  # type: ignore[arg-type]


@pytest.fixture
def cps3_in_reader() -> Iterator[VirtualCard]:
    with VirtualCard(SimpleCpsCard.cps3(), port=PORT) as card:
        yield card


@pytest.fixture
def foreign_card_in_reader() -> Iterator[VirtualCard]:
    with VirtualCard(SimpleCpsCard.cps3(atr=NON_CPS_ATR), port=PORT) as card:
        yield card


def test_no_pcsc_service_when_pcsclite_socket_is_missing(tmp_path: object) -> None:
    # pcsc-lite's client library finds pcscd through PCSCLITE_CSOCK_NAME: pointing it at
    # a socket nobody listens on is exactly "pcscd is not running" for this process.
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=f"{tmp_path}/no-pcscd.comm")
    proc = subprocess.run(
        [sys.executable, "-m", "cps_middleware.cli", "diag", "--json", "--lang", "en"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    run = diagnostics.DiagnosticRun.from_json(proc.stdout)
    service = run.result("pcsc.service")
    assert service.status is Status.ERROR
    assert service.reason == "pcsc.no_service"
    assert service.details["code_name"] == "SCARD_E_NO_SERVICE"
    assert service.remedy is not None and service.remedy.id == "pcsc_service"
    assert any("pcscd" in s for s in service.remedy.steps)
    assert run.result("pcsc.readers").status is Status.SKIPPED
    assert run.result("card.atr").status is Status.SKIPPED


def test_reader_filter_matching_no_reader_reports_no_reader() -> None:
    run = _run(reader="Lecteur qui n'existe pas")
    assert run.result("pcsc.service").status is Status.OK
    readers = run.result("pcsc.readers")
    assert readers.status is Status.ERROR and readers.reason == "pcsc.no_matching_reader"
    assert READER in readers.details["readers_seen"]
    assert readers.remedy is not None and readers.remedy.id == "reader"
    assert readers.remedy.title == "Branchez le lecteur de cartes"
    assert run.result("pcsc.card").status is Status.SKIPPED


def test_no_card_in_the_reader() -> None:
    run = _run(lang="en", reader=READER)
    assert run.result("pcsc.readers").details["readers"] == [READER]
    card = run.result("pcsc.card")
    assert card.status is Status.ERROR and card.reason == "card.absent"
    assert card.remedy is not None and card.remedy.id == "card_insert"
    assert any("chip first" in s for s in card.remedy.steps)  # the card the wrong way
    assert run.result("card.atr").status is Status.SKIPPED


def test_a_card_that_is_not_a_cps(foreign_card_in_reader: VirtualCard) -> None:
    run = _run(reader=READER)
    assert run.result("pcsc.card").status is Status.OK
    atr = run.result("card.atr")
    assert atr.status is Status.ERROR and atr.reason == "card.not_cps"
    assert NON_CPS_ATR.hex(" ").upper() in atr.seen
    assert atr.details["cards"][0]["generation"] == "not a CPS"
    assert atr.remedy is not None and atr.remedy.id == "card_unknown"
    assert "n'est pas une carte CPS" in atr.remedy.title


def test_a_cps3_is_recognised(cps3_in_reader: VirtualCard) -> None:
    run = _run(lang="en", reader=READER)
    atr = run.result("card.atr")
    assert atr.status is Status.OK, atr
    assert atr.reason == "card.cps"
    assert "CPS3" in atr.seen and READER in atr.seen
    assert atr.details["cards"][0]["interface"] == "contact"
    assert atr.remedy is None


def test_cli_diag_json_on_a_reader(cps3_in_reader: VirtualCard,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from cps_middleware.cli import main

    code = main(["diag", "--json", "--reader", READER])
    out = json.loads(capsys.readouterr().out)
    assert out["schema_version"] == 1
    by_id = {r["id"]: r for r in out["results"]}
    assert by_id["card.atr"]["status"] == "ok"
    # Exit code 1 exactly when some check is in error (the PKCS#11 part depends on the
    # machine's middleware), else 0.
    assert code == (1 if out["status"] == "error" else 0)


def test_a_card_with_a_garbled_answer_to_reset_is_reinserted() -> None:
    # vpcd passes the ATR the virtual card gives; a single 00 byte has no valid TS,
    # as a real reader reports for a chip read badly (card the wrong way, dirty contacts).
    with VirtualCard(SimpleCpsCard.cps3(atr=b"\x00"), port=PORT):
        run = _run(lang="en", reader=READER)
    assert run.result("pcsc.card").status is Status.OK
    atr = run.result("card.atr")
    assert atr.status is Status.ERROR and atr.reason == "card.garbled_atr"
    assert atr.remedy is not None and atr.remedy.id == "card_wrong_way"
    assert any("chip first, facing up" in s for s in atr.remedy.steps)


def test_a_cps3_read_contactless_is_a_warning() -> None:
    contactless = bytes.fromhex("3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E")
    with VirtualCard(SimpleCpsCard.cps3(atr=contactless), port=PORT):
        run = _run(lang="fr", reader=READER)
    atr = run.result("card.atr")
    assert atr.status is Status.WARNING and atr.reason == "card.contactless"
    assert "sans contact" in atr.seen
    assert atr.remedy is not None and atr.remedy.id == "card_contact"
