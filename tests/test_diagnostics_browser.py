"""The diagnostic's browser checks on a throw-away HOME: missing registration (with its
remedy in French and English), registered and seeing the card, a module that no
longer loads, two middlewares for one card. Real NSS tools, real test-token module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps_middleware import browser, diagnostics
from cps_middleware.diagnostics import DiagnosticOptions
from cps_middleware.diagnostics.checks_browser import installed_browsers
from cps_middleware.diagnostics.framework import Status
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.testcard import CpsTestCard

pytestmark = [
    pytest.mark.skipif(shutil.which("modutil") is None, reason="libnss3-tools is not installed"),
    pytest.mark.skipif(not installed_browsers()["chromium"], reason="chromium is not installed"),
]
BROWSER_IDS = ["browser.registered", "browser.card", "browser.chain", "browser.conflict"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return h


@pytest.fixture
def card(
    tmp_path: Path, cps_pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CpsTestCard]:
    with CpsTestCard(tmp_path / "cards", pki=cps_pki, name="diag-browser") as c:
        monkeypatch.setenv("CPS_TEST_CARDS_DIR", c.env["CPS_TEST_CARDS_DIR"])
        yield c


def _run(lang: str = "fr") -> diagnostics.DiagnosticRun:
    return diagnostics.run(DiagnosticOptions(), lang=lang, only=BROWSER_IDS)


def test_missing_registration_has_a_remedy_in_both_languages(home: Path) -> None:
    fr, en = _run("fr"), _run("en")
    for run in (fr, en):
        reg = run.result("browser.registered")
        assert reg.status is Status.WARNING and reg.reason == "browser.not_registered"
        assert reg.remedy is not None and reg.remedy.id == "browser_setup"
        assert any("cps browser setup" in step for step in reg.remedy.steps)
        assert run.result("browser.card").status is Status.SKIPPED
    assert "n'est pas enregistré" in fr.result("browser.registered").seen
    assert "is not registered" in en.result("browser.registered").seen
    assert fr.result("browser.registered").remedy.title != en.result(  # type: ignore[union-attr]
        "browser.registered").remedy.title  # type: ignore[union-attr]


def test_registered_module_sees_the_card(home: Path, card: CpsTestCard) -> None:
    browser.setup(card.module_path, home=home, firefox=False)
    run = _run("en")
    assert run.result("browser.registered").status is Status.OK
    seen = run.result("browser.card")
    assert seen.status is Status.OK and seen.reason == "browser.sees_card", seen
    assert run.result("browser.chain").status is Status.OK
    assert run.result("browser.conflict").status is Status.OK


def test_card_removed_and_module_gone_are_errors(home: Path, card: CpsTestCard) -> None:
    copy = home / "moved-cps-pkcs11.so"
    shutil.copy(card.module_path, copy)
    browser.setup(copy, home=home, firefox=False, certificates=False)
    card.remove()
    run = _run("fr")
    assert run.result("browser.card").reason == "browser.card_not_seen"
    assert run.result("browser.chain").status is Status.WARNING  # CAs not imported
    card.insert()
    copy.unlink()  # the middleware was uninstalled after setup
    run = _run("fr")
    res = run.result("browser.card")
    assert res.status is Status.ERROR and res.reason == "browser.module_not_loading"
    assert res.remedy is not None and res.remedy.id == "browser_module"


def test_two_middlewares_for_one_card_is_a_conflict(home: Path, card: CpsTestCard) -> None:
    browser.setup(card.module_path, home=home, firefox=False)
    other = home / "second-middleware.so"
    shutil.copy(card.module_path, other)
    browser.NssDb(browser.chromium_target(home).directory).add_module("Second", str(other))
    res = _run("en").result("browser.conflict")
    assert res.status is Status.WARNING and res.reason == "browser.conflict"
    assert res.remedy is not None and res.remedy.id == "browser_conflict"
    assert card.serial in str(res.details["conflicts"])
