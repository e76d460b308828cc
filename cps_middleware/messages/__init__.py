"""One catalogue for every sentence a person reads, in French (the default) and English.

Why a typed catalogue module and not gettext ``.po`` files: every sentence is
keyed by a stable code that programs also branch on (a diagnostic reason, a
validation status, a CLI message), the two languages sit side by side so a
test can prove both exist and differ, mypy checks the keys' types, and
nothing needs compiling at build time. Placeholders use ``str.format`` names.

Codes are ``area.name``; the sentences of an area live in ``_<area>.py`` beside
this file, as ``MESSAGES: dict[str, Msg]``. Adding an area is adding a file
and its name to ``AREAS``.

    >>> from cps_middleware.messages import text
    >>> text("common.tries_left", "en", n=2)
    '2 tries left'
"""

from __future__ import annotations

import importlib
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

__all__ = [
    "AREAS", "LANGUAGES", "Lang", "Msg", "all_messages", "default_lang", "error_hint",
    "error_summary", "error_text", "has", "resolve_lang", "text",
]

Lang = Literal["fr", "en"]
LANGUAGES: tuple[Lang, ...] = ("fr", "en")

# Every area's module; a test renders every code of every area in both languages.
AREAS: tuple[str, ...] = (
    "common",
    "errors",
    "cli",
    "demo",
    "diag",
    "tls",
    "pin",
    "validation",
    "cps4",
    "pkcs11",
    "psc",
    "revocation",
    "browser",
    "help",
)


@dataclass(frozen=True)
class Msg:
    """One sentence in both languages (``str.format`` placeholders, the same in both)."""

    fr: str
    en: str

    def __post_init__(self) -> None:
        if _fields(self.fr) != _fields(self.en):
            raise ValueError(f"placeholders differ between languages: {self.fr!r} / {self.en!r}")

    def get(self, lang: Lang) -> str:
        """The sentence in ``lang``."""
        return self.fr if lang == "fr" else self.en


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


_loaded: dict[str, Mapping[str, Msg]] = {}


def _area(area: str) -> Mapping[str, Msg]:
    table = _loaded.get(area)
    if table is None:
        if area not in AREAS:
            raise KeyError(f"unknown message area {area!r}")
        module = importlib.import_module(f"{__name__}._{area}")
        table = cast("Mapping[str, Msg]", module.MESSAGES)
        _loaded[area] = table
    return table


def all_messages() -> dict[str, Msg]:
    """Every code of every area (for tests and for documentation)."""
    out: dict[str, Msg] = {}
    for area in AREAS:
        out.update(_area(area))
    return out


def resolve_lang(lang: str | None = None) -> Lang:
    """``lang`` if it names a known language, else :func:`default_lang`."""
    if lang is not None:
        short = lang.lower()[:2]
        if short in LANGUAGES:
            return short
    return default_lang()


def default_lang() -> Lang:
    """French unless ``CPS_LANG`` or the locale (LC_ALL, LC_MESSAGES, LANG) says English."""
    for var in ("CPS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if not value or value in ("C", "POSIX", "C.UTF-8"):
            continue
        return "en" if value.lower().startswith("en") else "fr"
    return "fr"


def text(code: str, lang: str | None = None, /, **values: object) -> str:
    """The sentence for ``code`` in ``lang`` (default: :func:`default_lang`), filled in."""
    area = code.split(".", 1)[0]
    msg = _area(area)[code]
    return msg.get(resolve_lang(lang)).format(**values)


def has(code: str) -> bool:
    """Whether the catalogue holds ``code``."""
    area = code.split(".", 1)[0]
    return area in AREAS and code in _area(area)


def _error_code(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        code = f"errors.{cls.__name__}"
        if has(code):
            return code
    return "errors.CpsError"


def error_summary(exc: BaseException, lang: str | None = None) -> str:
    """What the error means in one sentence of ``lang`` (from its class, never its message),
    with the tries left when the error knows them."""
    out = text(_error_code(exc), lang)
    tries = getattr(exc, "tries_left", None)
    if isinstance(tries, int):
        out = out.rstrip(".") + " (" + text("common.tries_left", lang, n=tries) + ")."
    return out


def error_hint(exc: BaseException, lang: str | None = None) -> str:
    """What to do about the error, in ``lang``."""
    code = _error_code(exc) + ".hint"
    return text(code, lang) if has(code) else ""


def error_text(exc: BaseException, lang: str | None = None) -> str:
    """The one line a person reads for a library error.

    English: the error itself (function, code, message, module, hint). French:
    the meaning and what to do from the catalogue, then the technical facts
    (function, code name, the library's message) after ``détail technique``.
    """
    if resolve_lang(lang) == "en":
        return str(exc)
    facts = [getattr(exc, "function", None), getattr(exc, "code_name", None),
             getattr(exc, "message", None) or str(exc)]
    module = getattr(exc, "module", None)
    technical = ": ".join(f for f in facts if f) + (f" [{module}]" if module else "")
    hint = error_hint(exc, lang)
    return (error_summary(exc, lang).rstrip(".") + (f" — {hint}" if hint else "")
            + (" (" + text("common.technical", lang, detail=technical) + ")" if technical else ""))
