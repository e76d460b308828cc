"""The diagnostic framework, remedies and reports (no card needed)."""

from __future__ import annotations

import html
import json
import re
import threading
import time

import pytest

from cps_middleware import diagnostics, errors
from cps_middleware.diagnostics import (
    Check,
    CheckContext,
    DiagnosticRun,
    Finding,
    RunObserver,
    Status,
    run_checks,
)
from cps_middleware.diagnostics.remedies import (
    REMEDY_IDS,
    SUPPORT_ANS_EMAIL,
    SUPPORT_ANS_PHONE,
    SUPPORT_SIDEP_PHONE,
    remedy,
)
from cps_middleware.diagnostics.report import render_html, render_text_string


def _ok(ctx: CheckContext) -> Finding:
    return ctx.ok("t.ok", "tout va bien", "all good", value=1)


def _fails(ctx: CheckContext) -> Finding:
    raise errors.PinLocked("the PIN is blocked", function="C_Login", code=0xA4,
                           code_name="CKR_PIN_LOCKED")


def _crashes(ctx: CheckContext) -> Finding:
    raise ZeroDivisionError("boom")


def test_dependencies_skip_and_errors_carry_the_remedy() -> None:
    checks = [
        Check("a", "A", "A", _ok),
        Check("b", "B", "B", _fails, depends=("a",)),
        Check("c", "C", "C", _ok, depends=("b",)),
        Check("d", "D", "D", _crashes, depends=("a",)),
    ]
    run = run_checks(checks, CheckContext(None, "en"))
    assert [r.status for r in run.results] == [
        Status.OK, Status.ERROR, Status.SKIPPED, Status.ERROR]
    b = run.result("b")
    assert b.reason == "error.PinLocked"
    assert b.remedy is not None and b.remedy.id == "pin_locked"
    assert b.details["code_name"] == "CKR_PIN_LOCKED" and b.details["code"] == "0xA4"
    c = run.result("c")
    assert c.reason == "dependency" and c.details["depends_on"] == ["b"]
    d = run.result("d")
    assert d.reason == "internal" and "ZeroDivisionError" in d.seen
    assert run.status is Status.ERROR
    assert run.counts() == {"ok": 1, "warning": 0, "error": 2, "skipped": 1}


def test_a_hanging_check_times_out_and_the_run_goes_on() -> None:
    release = threading.Event()

    def hangs(ctx: CheckContext) -> Finding:
        release.wait(30)
        return ctx.ok("late", "tard", "late")

    checks = [
        Check("hang", "H", "H", hangs, timeout=0.3),
        Check("after", "After", "After", _ok),
        Check("dep", "Dep", "Dep", _ok, depends=("hang",)),
    ]
    t0 = time.monotonic()
    run = run_checks(checks, CheckContext(None, "fr"))
    elapsed = time.monotonic() - t0
    release.set()
    assert elapsed < 3
    hang = run.result("hang")
    assert hang.status is Status.ERROR and hang.reason == "timeout"
    assert hang.remedy is not None and hang.remedy.id == "timeout"
    assert "0.3 s" in hang.seen
    assert run.result("after").status is Status.OK
    assert run.result("dep").status is Status.SKIPPED


def test_dependencies_must_run_before() -> None:
    with pytest.raises(errors.InvalidInput):
        run_checks([Check("b", "B", "B", _ok, depends=("a",))], CheckContext(None))


def test_observer_sees_every_check_in_order() -> None:
    events: list[str] = []

    class Obs(RunObserver):
        def run_started(self, checks: object, lang: str) -> None:
            events.append("start")

        def check_started(self, check: Check, index: int, total: int) -> None:
            events.append(f"begin {check.id} {index}/{total}")

        def check_finished(self, result: object, index: int, total: int) -> None:
            events.append(f"end {index}")

        def run_finished(self, run: DiagnosticRun) -> None:
            events.append("done")

    run_checks([Check("a", "A", "A", _ok), Check("b", "B", "B", _ok)],
               CheckContext(None), observer=Obs())
    assert events == ["start", "begin a 0/2", "end 0", "begin b 1/2", "end 1", "done"]


def test_json_round_trip_with_schema_version() -> None:
    run = run_checks([Check("a", "A", "A", _ok), Check("b", "B", "B", _fails)],
                     CheckContext(None, "fr"), options_summary={"url": None})
    data = json.loads(run.to_json())
    assert data["schema"] == diagnostics.SCHEMA
    assert data["schema_version"] == diagnostics.SCHEMA_VERSION == 1
    assert data["status"] == "error"
    assert data["results"][1]["remedy"]["id"] == "pin_locked"
    back = DiagnosticRun.from_json(run.to_json())
    assert back.to_dict() == run.to_dict()
    data["schema_version"] = 99
    with pytest.raises(errors.InvalidInput, match="newer"):
        DiagnosticRun.from_dict(data)
    with pytest.raises(errors.InvalidInput):
        DiagnosticRun.from_dict({"schema": "something-else"})


def test_results_are_frozen() -> None:
    run = run_checks([Check("a", "A", "A", _ok)], CheckContext(None))
    r = run.results[0]
    with pytest.raises(AttributeError):
        r.status = Status.ERROR  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.details["value"] = 2  # type: ignore[index]


def test_every_remedy_exists_in_both_languages() -> None:
    for rid in REMEDY_IDS:
        fr, en = remedy(rid, "fr"), remedy(rid, "en")
        assert fr.title and en.title and fr.title != en.title
        assert len(fr.steps) == len(en.steps) >= 1
    assert remedy("pin_locked", "de").lang == "fr"  # French by default


def test_remedies_carry_the_field_guide() -> None:
    support = " ".join(remedy("tls_rejected", "fr").steps)
    assert SUPPORT_SIDEP_PHONE == "0 800 08 32 04" and SUPPORT_SIDEP_PHONE in support
    assert "9h00 à 20h00 du lundi au samedi" in support
    assert SUPPORT_ANS_EMAIL == "monserviceclient.cartes@asipsante.fr"
    assert SUPPORT_ANS_EMAIL in support and SUPPORT_ANS_PHONE == "0 825 852 000"
    assert "72 h" in support  # contact details at the Ordre, then wait
    contact = remedy("contact_details", "en")
    assert "72 hours" in " ".join(contact.steps) and "Ordre" in contact.title
    missing = " ".join(remedy("middleware_missing", "fr").steps)
    for needle in ("ATSAM", "Test SSL", "sélectionnez le certificat", "code porteur"):
        assert needle in missing
    locked = " ".join(remedy("pin_locked", "fr").steps)
    assert "code de déblocage" in locked and "nouvelle carte" in locked
    assert "autre ordinateur" in " ".join(remedy("reader", "fr").steps)
    assert "puce en premier" in " ".join(remedy("card_wrong_way", "fr").steps)
    assert "installez le logiciel de la carte CPS de l'ANS" in " ".join(
        remedy("opensc_cannot_sign", "fr").steps)
    assert "expir" in remedy("card_expired", "fr").title


def _sample_run() -> DiagnosticRun:
    def evil(ctx: CheckContext) -> Finding:
        return ctx.error("x", "<script>alert(1)</script>", "<script>alert(1)</script>",
                         "card_unknown", atr="3B <b>")

    return run_checks([Check("a", "A", "A", _ok), Check("e", "É & <E>", "E", evil)],
                      CheckContext(None, "fr"))


def test_html_report_is_self_contained_and_escaped() -> None:
    page = render_html(_sample_run())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page  # no script at all, and the check's text is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r'(src|href)\s*=', page)  # no external resource
    assert html.escape("Cette carte n'est pas une carte CPS") in page
    assert 'data-check="e" data-status="error"' in page
    assert "É &amp; &lt;E&gt;" in page


def test_text_report_shows_findings_and_remedies() -> None:
    text = render_text_string(_sample_run(), width=120)
    assert "Diagnostic de la carte CPS" in text
    assert "tout va bien" in text
    assert "Cette carte n'est pas une carte CPS" in text
    assert "\x1b[" not in text
    coloured = render_text_string(_sample_run(), width=120, color=True)
    assert "\x1b[" in coloured
