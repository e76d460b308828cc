"""The check framework of the diagnostic: checks, their results, and the run.

A :class:`Check` has a stable id, a title in French and English, the ids of the
earlier checks it depends on, a timeout, and a function that looks at the
machine and returns a :class:`Finding`. :func:`run_checks` runs the checks in
order: a check whose dependency did not pass is *skipped* (with the reason), a
check that raises becomes an *error* with its remedy, and a check that does not
answer within its timeout becomes an *error* too while the run goes on — a
hanging card, reader or server never hangs the diagnostic.

The result of a run, :class:`DiagnosticRun`, is frozen data: one
:class:`CheckResult` per check (status, reason code a program can branch on,
what was seen in plain words, technical details, remedy), serialisable to JSON
with a schema name and version so that a backend can store it and a UI can
render it. Progress goes through a :class:`RunObserver`.

The JSON form (:meth:`DiagnosticRun.to_json`), schema ``cps-middleware/diagnostic``
version 1::

    {"schema": "cps-middleware/diagnostic", "schema_version": 1,
     "tool_version": "0.1.0", "lang": "fr", "started_at": "2026-...+00:00",
     "duration_s": 0.42, "status": "ok|warning|error",
     "counts": {"ok": 12, "warning": 1, "error": 0, "skipped": 0},
     "environment": {"os": ..., "machine": ..., "python": ..., "python_bits": 64},
     "options": {... what was looked at; "pin_given": true|false, never the PIN},
     "results": [{"id": "pcsc.service", "title": ..., "status": "ok|warning|error|skipped",
                  "reason": "pcsc.no_service", "seen": "...", "details": {...},
                  "remedy": null | {"id": "pcsc_service", "lang": "fr", "title": ...,
                                    "steps": ["...", ...]},
                  "duration_s": 0.001}, ...]}

A reader accepts any ``schema_version`` up to its own (fields are only ever
added within a version).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import json
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cps_middleware import errors
from cps_middleware.diagnostics.remedies import LANGUAGES, Remedy, remedy
from cps_middleware.messages import error_summary, text

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Check",
    "CheckContext",
    "CheckResult",
    "DiagnosticRun",
    "Finding",
    "RunObserver",
    "Status",
    "error_details",
    "remedy_for_error",
    "run_checks",
]

SCHEMA = "cps-middleware/diagnostic"
SCHEMA_VERSION = 1

JsonValue = Any  # str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]


class Status(enum.StrEnum):
    """Outcome of one check; ``SKIPPED`` when a dependency did not pass or it was not asked."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.SKIPPED: 0, Status.OK: 1, Status.WARNING: 2, Status.ERROR: 3}


def _freeze(details: Mapping[str, JsonValue] | None) -> Mapping[str, JsonValue]:
    # Round-trip through JSON: details must be serialisable, and the copy
    # detaches them from the check's own (mutable) objects.
    return MappingProxyType(json.loads(json.dumps(dict(details or {}), default=str)))


@dataclass(frozen=True)
class Finding:
    """What a check function returns; the framework adds id, title, timing and the remedy text."""

    status: Status
    reason: str
    seen: str
    details: Mapping[str, JsonValue] = field(default_factory=dict)
    remedy: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """The frozen result of one check.

    ``reason`` is a stable code (``"pcsc.no_service"``, ``"pin.locked"``) for
    programs; ``seen`` says in plain words what was found; ``details`` holds
    the technical facts (codes, paths tried, ATR ...); ``remedy`` what to do.
    """

    check_id: str
    title: str
    status: Status
    reason: str
    seen: str
    details: Mapping[str, JsonValue]
    remedy: Remedy | None
    duration_s: float

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "id": self.check_id,
            "title": self.title,
            "status": self.status.value,
            "reason": self.reason,
            "seen": self.seen,
            "details": dict(self.details),
            "remedy": self.remedy.to_dict() if self.remedy else None,
            "duration_s": round(self.duration_s, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        rem = data.get("remedy")
        return cls(
            check_id=str(data["id"]),
            title=str(data["title"]),
            status=Status(data["status"]),
            reason=str(data["reason"]),
            seen=str(data["seen"]),
            details=_freeze(data.get("details")),
            remedy=Remedy(
                id=str(rem["id"]), lang=str(rem["lang"]), title=str(rem["title"]),
                steps=tuple(str(s) for s in rem["steps"]),
            ) if rem else None,
            duration_s=float(data.get("duration_s", 0.0)),
        )


class CheckContext:
    """What checks share during one run: the options, the language, and what earlier checks found.

    ``data`` carries objects from one check to the next (the PC/SC readers, the
    loaded module, the token, the certificates ...); ``resources`` closes what
    the checks opened when the run ends.
    """

    def __init__(self, options: Any, lang: str = "fr") -> None:
        self.options = options
        self.lang = lang if lang in LANGUAGES else "fr"
        self.data: dict[str, Any] = {}
        self.resources = contextlib.ExitStack()
        self._lock = threading.Lock()

    def say(self, fr: str, en: str) -> str:
        """The text in the run's language."""
        return fr if self.lang == "fr" else en

    def ok(self, reason: str, fr: str, en: str, **details: JsonValue) -> Finding:
        """A passing finding (``reason`` code, what was seen in French and English)."""
        return Finding(Status.OK, reason, self.say(fr, en), details)

    def warning(
        self, reason: str, fr: str, en: str, remedy: str | None = None, **details: JsonValue
    ) -> Finding:
        """A finding that works with a point to watch, and its remedy id."""
        return Finding(Status.WARNING, reason, self.say(fr, en), details, remedy)

    def error(
        self, reason: str, fr: str, en: str, remedy: str | None = None, **details: JsonValue
    ) -> Finding:
        """A failing finding and the id of its remedy."""
        return Finding(Status.ERROR, reason, self.say(fr, en), details, remedy)

    def skipped(self, reason: str, fr: str, en: str, **details: JsonValue) -> Finding:
        """A finding for a check that did not run, and why."""
        return Finding(Status.SKIPPED, reason, self.say(fr, en), details)

    def close(self) -> None:
        """Close what the checks opened (called once at the end of the run)."""
        with self._lock:
            self.resources.close()


CheckFunction = Callable[[CheckContext], Finding]


@dataclass(frozen=True)
class Check:
    """One diagnostic check: ``id``, titles, ``depends`` (ids of earlier checks), ``timeout``."""

    id: str
    title_fr: str
    title_en: str
    function: CheckFunction
    depends: tuple[str, ...] = ()
    timeout: float = 10.0

    def title(self, lang: str) -> str:
        """The check's title in ``lang`` (French unless ``"en"``)."""
        return self.title_fr if lang == "fr" else self.title_en


class RunObserver:
    """Progress of a run; subclass and override what you need (all no-ops here)."""

    def run_started(self, checks: Sequence[Check], lang: str) -> None:
        """Called once before the first check."""

    def check_started(self, check: Check, index: int, total: int) -> None:
        """Called before each check (``index`` from 0)."""

    def check_finished(self, result: CheckResult, index: int, total: int) -> None:
        """Called after each check, skipped ones included."""

    def run_finished(self, run: DiagnosticRun) -> None:
        """Called once with the whole run."""


@dataclass(frozen=True)
class DiagnosticRun:
    """A whole diagnostic: when, where, in which language, and one result per check."""

    results: tuple[CheckResult, ...]
    lang: str
    started_at: str
    duration_s: float
    environment: Mapping[str, JsonValue]
    options: Mapping[str, JsonValue]
    tool_version: str
    schema_version: int = SCHEMA_VERSION

    @property
    def status(self) -> Status:
        """The worst status among the checks (``SKIPPED`` never makes a run fail)."""
        worst = Status.OK
        for r in self.results:
            if r.status.severity > worst.severity:
                worst = r.status
        return worst

    def counts(self) -> dict[str, int]:
        """How many results have each status (every status present, 0 included)."""
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status.value] += 1
        return out

    def result(self, check_id: str) -> CheckResult:
        """The result of the check ``check_id`` (``KeyError`` if it did not run)."""
        for r in self.results:
            if r.check_id == check_id:
                return r
        raise KeyError(check_id)

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "schema": SCHEMA,
            "schema_version": self.schema_version,
            "tool_version": self.tool_version,
            "lang": self.lang,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 4),
            "status": self.status.value,
            "counts": self.counts(),
            "environment": dict(self.environment),
            "options": dict(self.options),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The run as JSON (schema ``cps-middleware/diagnostic``, see the module doc)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiagnosticRun:
        if data.get("schema") != SCHEMA:
            raise errors.InvalidInput(
                f"not a cps-middleware diagnostic: schema {data.get('schema')!r}"
            )
        version = int(data.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise errors.InvalidInput(
                f"diagnostic schema version {version} is newer than this library's "
                f"({SCHEMA_VERSION})",
                hint="upgrade cps-middleware to read this report",
            )
        return cls(
            results=tuple(CheckResult.from_dict(r) for r in data["results"]),
            lang=str(data["lang"]),
            started_at=str(data["started_at"]),
            duration_s=float(data["duration_s"]),
            environment=_freeze(data.get("environment")),
            options=_freeze(data.get("options")),
            tool_version=str(data.get("tool_version", "")),
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> DiagnosticRun:
        return cls.from_dict(json.loads(text))

    def to_html(self) -> str:
        """The run as a self-contained HTML page."""
        from cps_middleware.diagnostics.report import render_html

        return render_html(self)

    def to_text(self, *, color: bool = False, width: int = 100) -> str:
        """The run as the text report (ANSI colours only with ``color``)."""
        from cps_middleware.diagnostics.report import render_text_string

        return render_text_string(self, color=color, width=width)


# Which remedy an error raised inside a check calls for: first match in MRO order.
_ERROR_REMEDIES: tuple[tuple[type[BaseException], str], ...] = (
    (errors.PcscServiceUnavailable, "pcsc_service"),
    (errors.NoReaders, "reader"),
    (errors.NoCardPresent, "card_insert"),
    (errors.CardRemoved, "card_insert"),
    (errors.CardInUse, "card_in_use"),
    (errors.ModuleLoadError, "middleware_missing"),
    (errors.NoSuchToken, "token_missing"),
    (errors.TokenUnusable, "token_unusable"),
    (errors.PinLocked, "pin_locked"),
    (errors.FinalTryRefused, "pin_final_try"),
    (errors.PukLocked, "pin_locked"),
    (errors.NotLoggedIn, "pin_needed"),
    (errors.SelectionError, "certificates_missing"),
    (errors.NoSuchObject, "certificates_missing"),
    (errors.TlsError, "tls_card"),
    (errors.PcscError, "reader"),
    (errors.Pkcs11Error, "token_missing"),
)


def remedy_for_error(exc: BaseException) -> str:
    """The remedy id for an exception raised by the library."""
    for cls, rid in _ERROR_REMEDIES:
        if isinstance(exc, cls):
            return rid
    return "internal"


def error_details(exc: BaseException) -> dict[str, JsonValue]:
    """Technical details of an exception for a result: class, message, code, module, hint."""
    d: dict[str, JsonValue] = {"exception": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, errors.CpsError):
        for k in ("function", "code_name", "module", "hint"):
            v = getattr(exc, k, None)
            if v is not None:
                d[k] = v
        if exc.code is not None:
            d["code"] = f"0x{exc.code:X}"
        attempts = getattr(exc, "attempts", None)
        if attempts:
            d["attempts"] = [[p, why] for p, why in attempts]
    return d


def _finding_from_exception(ctx: CheckContext, exc: BaseException) -> Finding:
    if isinstance(exc, errors.CpsError):
        # The French slot gets the catalogue's sentence for the error's class, never the
        # library's (English) message, which stays in the details.
        reason = "error." + type(exc).__name__
        return ctx.error(
            reason, error_summary(exc, "fr"), exc.message, remedy_for_error(exc),
            **error_details(exc),
        )
    error = f"{type(exc).__name__}: {exc}"
    return ctx.error(
        "internal",
        text("diag.unexpected", "fr", error=error),
        text("diag.unexpected", "en", error=error),
        "internal",
        **error_details(exc),
    )


def _call_with_timeout(check: Check, ctx: CheckContext) -> Finding:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["finding"] = check.function(ctx)
        except BaseException as exc:  # reported as the check's result, never lost
            box["exc"] = exc

    # A daemon thread per check: if the card or server hangs, the thread is
    # abandoned and the run goes on (a ThreadPoolExecutor would block exit).
    worker = threading.Thread(target=target, name=f"cps-diag-{check.id}", daemon=True)
    worker.start()
    worker.join(check.timeout)
    if worker.is_alive():
        return ctx.error(
            "timeout",
            text("diag.timeout", "fr", seconds=f"{check.timeout:g}"),
            text("diag.timeout", "en", seconds=f"{check.timeout:g}"),
            "timeout",
            timeout_s=check.timeout,
        )
    if "exc" in box:
        exc = box["exc"]
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        return _finding_from_exception(ctx, exc)
    finding = box.get("finding")
    if not isinstance(finding, Finding):
        return _finding_from_exception(
            ctx, TypeError(f"check {check.id} returned {type(finding).__name__}, not a Finding")
        )
    return finding


def _environment() -> dict[str, JsonValue]:
    return {
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_bits": 64 if sys.maxsize > 2**32 else 32,
    }


def _tool_version() -> str:
    from cps_middleware import __version__

    return __version__


def run_checks(
    checks: Iterable[Check],
    ctx: CheckContext,
    *,
    observer: RunObserver | None = None,
    options_summary: Mapping[str, JsonValue] | None = None,
) -> DiagnosticRun:
    """Run ``checks`` in order with ``ctx`` and return the frozen run.

    Dependencies must name earlier checks. The context's resources are closed
    at the end, whatever happened.
    """
    checks = list(checks)
    seen_ids: set[str] = set()
    for c in checks:
        missing = [d for d in c.depends if d not in seen_ids]
        if missing:
            raise errors.InvalidInput(
                f"check {c.id} depends on {missing}, which do not run before it"
            )
        seen_ids.add(c.id)
    obs = observer or RunObserver()
    started = _dt.datetime.now(_dt.UTC)
    t0 = time.monotonic()
    results: dict[str, CheckResult] = {}
    obs.run_started(checks, ctx.lang)
    try:
        for i, check in enumerate(checks):
            obs.check_started(check, i, len(checks))
            c0 = time.monotonic()
            failed = [
                d for d in check.depends if results[d].status in (Status.ERROR, Status.SKIPPED)
            ]
            if failed:
                titles = ", ".join(results[d].title for d in failed)
                finding = ctx.skipped(
                    "dependency",
                    text("diag.dependency", "fr", titles=titles),
                    text("diag.dependency", "en", titles=titles),
                    depends_on=failed,
                )
            else:
                finding = _call_with_timeout(check, ctx)
            result = CheckResult(
                check_id=check.id,
                title=check.title(ctx.lang),
                status=finding.status,
                reason=finding.reason,
                seen=finding.seen,
                details=_freeze(finding.details),
                remedy=remedy(finding.remedy, ctx.lang) if finding.remedy else None,
                duration_s=time.monotonic() - c0,
            )
            results[check.id] = result
            obs.check_finished(result, i, len(checks))
    finally:
        ctx.close()
    run = DiagnosticRun(
        results=tuple(results.values()),
        lang=ctx.lang,
        started_at=started.isoformat(timespec="seconds"),
        duration_s=time.monotonic() - t0,
        environment=_freeze(_environment()),
        options=_freeze(options_summary or {}),
        tool_version=_tool_version(),
    )
    obs.run_finished(run)
    return run
