"""Diagnostic checks of the browsers: is the card middleware registered, does it load and
see the card, can the IGC-Santé chain be imported, is a second middleware in the way.

They look at the current user's browsers (``$HOME``): Chromium's NSS database
``~/.pki/nssdb`` when Chromium is installed, and every Firefox profile when
Firefox is. Nothing is changed; loading the registered modules is done by
``modutil -list`` in a child process, as the browser would at start-up.
"""

from __future__ import annotations

import shutil
from typing import Any

from cps_middleware.diagnostics.framework import Check, CheckContext, Finding
from cps_middleware.messages import text

__all__ = ["BROWSER_CHECKS", "installed_browsers"]

_CHROMIUM_BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FIREFOX_BINARIES = ("firefox", "firefox-esr")


def installed_browsers() -> dict[str, bool]:
    """Which browsers (chromium, firefox) have a binary on this machine."""
    return {
        "chromium": any(shutil.which(b) for b in _CHROMIUM_BINARIES),
        "firefox": any(shutil.which(b) for b in _FIREFOX_BINARIES),
    }


def _say(ctx: CheckContext, code: str, **values: str) -> tuple[str, str]:
    return text(code, "fr", **values), text(code, "en", **values)


def _states(ctx: CheckContext, load: bool) -> list[Any]:
    """The browser databases' status, computed once per run (loading modules once)."""
    from cps_middleware import browser

    key = "browser.status.loaded" if load else "browser.status"
    if key not in ctx.data:
        have = installed_browsers()
        ctx.data[key] = browser.status(chromium=have["chromium"], firefox=have["firefox"],
                                       load=load)  # fmt: skip
    states: list[Any] = ctx.data[key]
    return states


def _where(states: list[Any]) -> str:
    return ", ".join(f"{s.target.browser.value} ({s.target.name})" for s in states)


def check_registered(ctx: CheckContext) -> Finding:
    have = installed_browsers()
    if not any(have.values()):
        return ctx.skipped("browser.none", *_say(ctx, "browser.check_no_browser"))
    states = _states(ctx, load=False)
    details: dict[str, Any] = {"targets": [s.to_dict(ctx.lang) for s in states],
                               "installed": have}  # fmt: skip
    missing = [s for s in states if not s.registered]
    if not states or missing:
        where = _where(missing) or ", ".join(b for b, ok in have.items() if ok)
        return ctx.warning("browser.not_registered",
                           *_say(ctx, "browser.check_not_registered", where=where),
                           "browser_setup", **details)  # fmt: skip
    return ctx.ok("browser.registered", *_say(ctx, "browser.check_registered",
                                              where=_where(states)), **details)  # fmt: skip


def check_sees_card(ctx: CheckContext) -> Finding:
    if not any(s.registered for s in _states(ctx, load=False)):
        return ctx.skipped("browser.not_registered",
                           *_say(ctx, "browser.check_not_registered", where="-"))  # fmt: skip
    states = [s for s in _states(ctx, load=True) if s.registered]
    details: dict[str, Any] = {"targets": [s.to_dict(ctx.lang) for s in states]}
    running = [s for s in states if s.running]
    broken = [s for s in states if s.module_loads is False]
    if broken:
        return ctx.error("browser.module_not_loading",
                         *_say(ctx, "browser.check_not_loading", where=_where(broken)),
                         "browser_module", **details)  # fmt: skip
    checked = [s for s in states if not s.running]
    if not checked:
        said = _say(ctx, "browser.check_running", where=_where(running))
        return ctx.warning("browser.running", *said, None, **details)
    # The card the diagnostic found through its own module (when that check ran).
    info = ctx.data.get("token_info")
    serial = str(getattr(info, "serial", "") or "").strip() or None
    details["card_serial"] = serial
    blind = []
    for s in checked:
        serials = {t.serial for m in s.card_modules for t in m.tokens if t.token}
        if not serials or (serial is not None and serial not in serials):
            blind.append(s)
    if blind:
        return ctx.error("browser.card_not_seen",
                         *_say(ctx, "browser.check_no_card", where=_where(blind)),
                         "browser_module", **details)  # fmt: skip
    return ctx.ok("browser.sees_card", *_say(ctx, "browser.check_sees_card",
                                             where=_where(checked)), **details)  # fmt: skip


def check_chain(ctx: CheckContext) -> Finding:
    from cps_middleware import browser

    try:
        certs = browser.igc_sante_certificates()
    except (OSError, ValueError) as exc:
        return ctx.error("browser.chain_unreadable",
                         *_say(ctx, "browser.check_chain_broken", error=str(exc)),
                         "internal")  # fmt: skip
    details: dict[str, Any] = {"certificates": [n for n, _ in certs]}
    have = installed_browsers()
    states = _states(ctx, load=False) if any(have.values()) else []
    missing = [s for s in states if s.exists and len(s.certificates) < len(certs)]
    if missing:
        details["missing_in"] = [s.target.to_dict() for s in missing]
        return ctx.warning("browser.chain_missing",
                           *_say(ctx, "browser.check_chain_missing", where=_where(missing)),
                           "browser_setup", **details)  # fmt: skip
    return ctx.ok("browser.chain_ok", *_say(ctx, "browser.check_chain_ok", n=str(len(certs))),
                  **details)  # fmt: skip


def check_conflict(ctx: CheckContext) -> Finding:
    if not any(s.registered for s in _states(ctx, load=False)):
        return ctx.skipped("browser.not_registered",
                           *_say(ctx, "browser.check_not_registered", where="-"))  # fmt: skip
    states = [s for s in _states(ctx, load=True) if s.registered and not s.running]
    found = [(s, serial, names) for s in states for serial, names in s.conflicts()]
    # Two middlewares registered for the card even when it is not inserted now:
    # two card modules whose libraries are CPS middlewares (ANS, OpenSC) in one database.
    details: dict[str, Any] = {"conflicts": [{"target": s.target.to_dict(), "serial": serial,
                              "modules": list(names)} for s, serial, names in found]}  # fmt: skip
    if found:
        where = "; ".join(f"{s.target.browser.value} ({s.target.name}): {', '.join(names)}"
                          for s, _serial, names in found)  # fmt: skip
        return ctx.warning("browser.conflict", *_say(ctx, "browser.check_conflict", where=where),
                           "browser_conflict", **details)  # fmt: skip
    return ctx.ok("browser.no_conflict", *_say(ctx, "browser.check_no_conflict"), **details)


BROWSER_CHECKS: tuple[Check, ...] = (
    Check("browser.registered", "Carte déclarée dans les navigateurs",
          "Card registered in the browsers", check_registered, timeout=20),
    Check("browser.card", "Le navigateur voit la carte", "The browser sees the card",
          check_sees_card, depends=("browser.registered",), timeout=60),
    Check("browser.chain", "Certificats IGC-Santé pour les navigateurs",
          "IGC-Santé certificates for the browsers", check_chain, timeout=20),
    Check("browser.conflict", "Un seul logiciel de carte par navigateur",
          "One card middleware per browser", check_conflict,
          depends=("browser.registered",), timeout=60),
)  # fmt: skip
