"""The one catalogue: both languages complete for every code, errors and remedies included."""

from __future__ import annotations

import inspect
import string

import pytest

from cps_middleware import errors
from cps_middleware.diagnostics import DEFAULT_CHECKS, remedies
from cps_middleware.diagnostics.framework import Check, CheckContext, run_checks
from cps_middleware.messages import (
    AREAS,
    Msg,
    all_messages,
    error_summary,
    error_text,
    has,
    resolve_lang,
    text,
)

# French identical to English is allowed only for these (words both languages use).
SAME_IN_BOTH = {
    "diag.status_ok", "cli.usage_sign", "cli.info_profession", "help.argparse_options",
    "pkcs11.middleware_opensc", "pkcs11.middleware_other",  # product names
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _sample(template: str) -> dict[str, object]:
    return {name: 7 for name in _fields(template)}


@pytest.mark.parametrize("code", sorted(all_messages()))
def test_every_code_renders_in_both_languages_and_french_differs(code: str) -> None:
    msg = all_messages()[code]
    assert code.split(".", 1)[0] in AREAS
    fr, en = text(code, "fr", **_sample(msg.fr)), text(code, "en", **_sample(msg.en))
    assert fr.strip() and en.strip(), code
    if code not in SAME_IN_BOTH:
        assert fr != en, f"{code}: the French is the English: {fr!r}"


def test_placeholders_must_match_between_languages() -> None:
    with pytest.raises(ValueError, match="placeholders differ"):
        Msg(fr="{n} essai(s)", en="{count} tries")


def test_remedies_and_check_titles_follow_the_same_rules() -> None:
    for rid in remedies.REMEDY_IDS:
        fr, en = remedies.remedy(rid, "fr"), remedies.remedy(rid, "en")
        assert fr.title and en.title and fr.title != en.title, rid
        assert len(fr.steps) == len(en.steps) and all(fr.steps) and all(en.steps), rid
        for a, b in zip(fr.steps, en.steps, strict=True):
            assert a != b, f"{rid}: a step is the same in both languages: {a!r}"
    for check in DEFAULT_CHECKS:
        assert check.title_fr and check.title_en and check.title_fr != check.title_en, check.id


def _error_classes() -> list[type[errors.CpsError]]:
    return [c for _n, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, errors.CpsError)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_library_error_has_its_own_sentence_and_hint(cls: type[errors.CpsError]) -> None:
    assert has(f"errors.{cls.__name__}"), f"no sentence for {cls.__name__}"
    assert has(f"errors.{cls.__name__}.hint"), f"no hint for {cls.__name__}"


def test_error_text_in_french_never_uses_the_english_message_as_the_sentence() -> None:
    exc = errors.PinIncorrect("C_Login failed", function="C_Login",
                              code_name="CKR_PIN_INCORRECT", tries_left=2)
    fr = error_text(exc, "fr")
    assert fr.startswith("Code porteur incorrect (2 essai(s) restant(s)) — la carte se bloque")
    assert fr.endswith("(détail technique : C_Login: CKR_PIN_INCORRECT: C_Login failed; "
                       "2 tries left)")
    assert error_text(exc, "en") == str(exc)
    assert error_summary(exc, "en") == "Wrong PIN (2 tries left)."
    # An error class with no sentence of its own takes its parent's.
    class Custom(errors.PcscError):
        pass

    assert error_summary(Custom("x"), "fr") == text("errors.PcscError", "fr")
    assert error_summary(ValueError("x"), "fr") == text("errors.CpsError", "fr")


def test_a_check_that_raised_puts_french_in_the_french_slot() -> None:
    def raising(ctx: CheckContext) -> object:
        raise errors.PinLocked("C_Login: CKR_PIN_LOCKED: the PIN is blocked")

    def crashing(ctx: CheckContext) -> object:
        raise ZeroDivisionError("division by zero")

    checks = [Check("x.pin", "Code", "PIN", raising),  # type: ignore[arg-type]
              Check("x.bug", "Bogue", "Bug", crashing)]  # type: ignore[arg-type]
    run = run_checks(checks, CheckContext(None, "fr"))
    pin, bug = run.results
    assert pin.seen == "Le code porteur est bloqué." and pin.reason == "error.PinLocked"
    assert pin.details["message"].startswith("C_Login: CKR_PIN_LOCKED: the PIN is blocked")
    assert pin.remedy is not None and pin.remedy.lang == "fr"
    assert bug.seen.startswith("Erreur inattendue : ZeroDivisionError")
    run = run_checks(checks, CheckContext(None, "en"))
    assert run.results[0].seen.startswith("C_Login: CKR_PIN_LOCKED: the PIN is blocked")


def test_language_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CPS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_lang(None) == "fr"
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    assert resolve_lang(None) == "en" and resolve_lang("fr") == "fr"
    monkeypatch.setenv("CPS_LANG", "fr")
    assert resolve_lang(None) == "fr"
