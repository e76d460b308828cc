"""Reports of a diagnostic run: coloured text for a terminal (rich), and a self-contained HTML page.

JSON is :meth:`DiagnosticRun.to_json`. The HTML of one result
(:func:`render_result_html`) is shared by the HTML report and the local web
page, so both show the same thing.
"""

from __future__ import annotations

import html
import io
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cps_middleware.diagnostics.framework import CheckResult, DiagnosticRun, Status
from cps_middleware.diagnostics.remedies import LANGUAGES
from cps_middleware.messages import text

__all__ = [
    "CSS",
    "render_html",
    "render_result_html",
    "render_text",
    "render_text_string",
    "status_label",
]

_ICONS = {Status.OK: "✔", Status.WARNING: "▲", Status.ERROR: "✖", Status.SKIPPED: "–"}
_STYLES = {
    Status.OK: "bold green",
    Status.WARNING: "bold yellow",
    Status.ERROR: "bold red",
    Status.SKIPPED: "dim",
}
def _w(lang: str, key: str, **values: object) -> str:
    return text(f"diag.{key}", lang if lang in LANGUAGES else "fr", **values)


def status_label(status: Status, lang: str = "fr") -> str:
    """``OK``, ``Attention``, ``Erreur``, ``Non vérifié`` (or English)."""
    return _w(lang, f"status_{status.value}")


def _overall(run: DiagnosticRun) -> str:
    return _w(run.lang, f"overall_{run.status.value}")


def _summary(run: DiagnosticRun) -> str:
    return _w(run.lang, "summary", duration=f"{run.duration_s:.1f}", **run.counts())


def _detail_text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_detail_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_detail_text(v)}" for k, v in value.items())
    return str(value)


# --- text ----------------------------------------------------------------------------


def render_text(run: DiagnosticRun, console: Console, *, details: bool = False) -> None:
    """Print the run on a rich console: a table of checks, then what to do for each problem."""
    lang = run.lang
    table = Table(title=Text(_w(lang, "title"), style="bold"), expand=False, show_lines=False)
    table.add_column(_w(lang, "col_status"), no_wrap=True)
    table.add_column(_w(lang, "col_check"), style="bold", max_width=26)
    table.add_column(_w(lang, "col_seen"), overflow="fold")
    for r in run.results:
        # Text, never markup: what a check saw (reader names, holder names) is shown as is.
        table.add_row(
            Text(f"{_ICONS[r.status]} {status_label(r.status, lang)}", style=_STYLES[r.status]),
            Text(r.title),
            Text(r.seen),
        )
    console.print(table)
    for r in run.results:
        show_details = details and bool(r.details) and r.status is not Status.SKIPPED
        if r.remedy is None and not show_details:
            continue
        parts: list[Any] = []
        if r.remedy is not None:
            parts.append(Text(r.remedy.title, style="bold"))
            for i, step in enumerate(r.remedy.steps, 1):
                parts.append(Text(f"{i}. {step}"))
        if show_details:
            parts.append(Text(_w(lang, "details"), style="dim bold"))
            for k, v in r.details.items():
                parts.append(Text(f"  {k}: {_detail_text(v)}", style="dim"))
        console.print(
            Panel(
                Group(*parts),
                title=Text(f"{_ICONS[r.status]} {r.title}"),
                title_align="left",
                border_style=_STYLES[r.status].replace("bold ", ""),
            )
        )
    overall = run.status
    console.print(
        Text(f"{_ICONS[overall]} {_overall(run)}", style=_STYLES[overall]),
        Text(_summary(run), style="dim"),
    )


def render_text_string(
    run: DiagnosticRun, *, color: bool = False, width: int = 100, details: bool = False
) -> str:
    """The text report as a string (ANSI colours only when ``color``)."""
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, no_color=not color, highlight=False,
        color_system="standard" if color else None, markup=False, emoji=False,
    )
    render_text(run, console, details=details)
    return buf.getvalue()


# --- HTML ------------------------------------------------------------------------------

CSS = """
:root { --ok:#1b7f3b; --warning:#a86a00; --error:#b3261e; --skipped:#6b6b6b; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background:#f4f5f7; color:#1d1d1f; line-height:1.45; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
.overall { padding: .8rem 1rem; border-radius: .5rem; color: #fff; font-weight: 600;
           margin: 1rem 0; }
.overall.ok { background: var(--ok); } .overall.warning { background: var(--warning); }
.overall.error { background: var(--error); } .overall.skipped { background: var(--skipped); }
.muted { color:#555; font-size:.9rem; }
.result { background:#fff; border-radius:.5rem; margin:.6rem 0; padding:.7rem 1rem;
          border-left: .4rem solid var(--skipped); box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.result.ok { border-left-color: var(--ok); } .result.warning { border-left-color: var(--warning); }
.result.error { border-left-color: var(--error); }
.result h2 { font-size: 1.05rem; margin: 0; display:flex; gap:.6rem; align-items:baseline; }
.badge { font-size:.8rem; font-weight:700; padding:.05rem .45rem; border-radius:.3rem;
         color:#fff; background: var(--skipped); white-space: nowrap; }
.badge.ok { background: var(--ok); } .badge.warning { background: var(--warning); }
.badge.error { background: var(--error); }
.seen { margin:.35rem 0 0; }
.remedy { margin:.6rem 0 0; padding:.5rem .8rem; background:#fff8e6; border-radius:.4rem; }
.result.error .remedy { background:#fdecea; }
.remedy h3 { font-size: .95rem; margin: 0 0 .3rem; }
.remedy ol { margin: 0; padding-left: 1.3rem; }
details { margin-top:.4rem; font-size:.85rem; color:#444; }
details dl { display:grid; grid-template-columns: max-content 1fr; gap:.1rem .8rem;
             margin:.3rem 0; }
details dt { font-weight:600; } details dd { margin:0; word-break: break-word;
                                             font-family: ui-monospace, monospace; }
"""


def render_result_html(result: CheckResult, lang: str = "fr") -> str:
    """One result as an HTML ``<section>`` (all text escaped)."""
    e = html.escape
    st = result.status.value
    out = [
        f'<section class="result {st}" data-check="{e(result.check_id)}" data-status="{st}">',
        f'<h2><span class="badge {st}">{e(status_label(result.status, lang))}</span>'
        f"<span>{e(result.title)}</span></h2>",
        f'<p class="seen">{e(result.seen)}</p>',
    ]
    if result.remedy is not None:
        out.append(
            f'<div class="remedy"><h3>{e(_w(lang, "what_to_do"))} {e(result.remedy.title)}</h3><ol>'
        )
        out.extend(f"<li>{e(step)}</li>" for step in result.remedy.steps)
        out.append("</ol></div>")
    if result.details:
        out.append(f"<details><summary>{e(_w(lang, 'details'))}</summary><dl>")
        for k, v in result.details.items():
            out.append(f"<dt>{e(k)}</dt><dd>{e(_detail_text(v))}</dd>")
        out.append("</dl></details>")
    out.append("</section>")
    return "".join(out)


def render_overall_html(run: DiagnosticRun) -> str:
    e = html.escape
    st = run.status
    return (
        f'<div class="overall {st.value}" data-overall="{st.value}">{e(_overall(run))}'
        f'</div><p class="muted">{e(_summary(run))}</p>'
    )


def render_html(run: DiagnosticRun) -> str:
    """A self-contained HTML page (inline CSS, no script, no external resource)."""
    e = html.escape
    env = run.environment
    body = "".join(render_result_html(r, run.lang) for r in run.results)
    footer = _w(run.lang, "generated", version=run.tool_version, when=run.started_at)
    title = _w(run.lang, "title")
    envline = " · ".join(
        str(env[k]) for k in ("os", "os_release", "machine", "python") if k in env
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{e(run.lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{e(title)}</h1><p class=\"muted\">{e(envline)}</p>"
        f"{render_overall_html(run)}{body}"
        f'<p class="muted">{e(footer)}</p></main></body></html>\n'
    )
