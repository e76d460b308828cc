"""The CPS diagnostic: checks with remedies for doctors, text/JSON/HTML reports, a local web page.

The backend a diagnostic tool imports::

    from cps_middleware import diagnostics

    run = diagnostics.run(lang="fr")                      # every check, in order
    run = diagnostics.run(diagnostics.DiagnosticOptions(url="https://..."), lang="en")
    print(run.status, run.to_json())                      # JSON with a schema version
    html = run.to_html()                                  # self-contained page

Each result has a status (ok / warning / error / skipped), a reason code, what
was seen, technical details and a remedy drawn from the field guide doctors
follow. The local web page is :class:`cps_middleware.diagnostics.web.DiagnosticServer`.
"""

from __future__ import annotations

from collections.abc import Sequence

from cps_middleware.diagnostics.checks import DEFAULT_CHECKS, DiagnosticOptions, check_ids
from cps_middleware.diagnostics.framework import (
    SCHEMA,
    SCHEMA_VERSION,
    Check,
    CheckContext,
    CheckResult,
    DiagnosticRun,
    Finding,
    RunObserver,
    Status,
    run_checks,
)
from cps_middleware.diagnostics.remedies import Remedy, remedy

__all__ = [
    "DEFAULT_CHECKS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Check",
    "CheckContext",
    "CheckResult",
    "DiagnosticOptions",
    "DiagnosticRun",
    "Finding",
    "Remedy",
    "RunObserver",
    "Status",
    "check_ids",
    "remedy",
    "run",
    "run_checks",
]


def run(
    options: DiagnosticOptions | None = None,
    *,
    lang: str = "fr",
    observer: RunObserver | None = None,
    checks: Sequence[Check] | None = None,
    only: Sequence[str] | None = None,
) -> DiagnosticRun:
    """Run the diagnostic and return the frozen :class:`DiagnosticRun`.

    ``only`` keeps the named checks and the checks they depend on.
    """
    opts = options or DiagnosticOptions()
    selected = list(checks if checks is not None else DEFAULT_CHECKS)
    if only:
        by_id = {c.id: c for c in selected}
        keep: set[str] = set()
        stack = list(only)
        while stack:
            cid = stack.pop()
            if cid in keep:
                continue
            if cid not in by_id:
                from cps_middleware.errors import InvalidInput

                raise InvalidInput(f"unknown check {cid!r}", hint="known: " + ", ".join(by_id))
            keep.add(cid)
            stack.extend(by_id[cid].depends)
        selected = [c for c in selected if c.id in keep]
    ctx = CheckContext(opts, lang)
    return run_checks(selected, ctx, observer=observer, options_summary=opts.summary())
