"""``cps validate PATH...``: certificate files checked against IGC-Santé (progress, summary)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cps_middleware import errors
from cps_middleware.cli._common import EXIT_OK, EXIT_PROBLEM, Io, Subparsers, add_command

if TYPE_CHECKING:
    from cps_middleware.validation import TrustStore

__all__ = ["cmd_validate", "collect_certificates", "register"]

CERT_SUFFIXES = {".der", ".cer", ".crt", ".pem"}


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "validate",
        help="validate certificate files against IGC-Santé (progress, summary, --json)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="certificate files or directories")
    p.add_argument("--crl", action="append", metavar="FILE", help="CRL file or directory")
    p.add_argument("--trust", choices=("production", "test"), default="production")
    p.add_argument("--trust-file", action="append", metavar="FILE",
                   help="extra trusted CA certificate(s); repeatable")
    p.add_argument("--at", metavar="ISO-DATE", help="validation time (default: now)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per certificate")
    fetch = p.add_argument_group("revocation sources (with --fetch)")
    fetch.add_argument(
        "--fetch", action="store_true",
        help="download the CRLs of each certificate's HTTP distribution points (cached, "
        "refreshed daily) and ask the IGC-Santé OCSP responder for what no CRL covers")
    fetch.add_argument(
        "--soft-fail", action="store_true",
        help="accept a certificate when no revocation answer can be had "
        "(default: hard-fail, REVOCATION_UNKNOWN)")
    fetch.add_argument("--ocsp-url", metavar="URL",
                       help="OCSP responder (default: http://ocsp.esante.gouv.fr; 'none': no OCSP)")
    fetch.add_argument("--crl-mirror", action="append", metavar="PREFIX=URL",
                       help="fetch CRL addresses starting with PREFIX from URL instead; repeatable")
    fetch.add_argument("--cache-dir", metavar="DIR",
                       help="CRL cache (default: ~/.cache/cps-middleware/crl)")
    fetch.add_argument("--fetch-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="network timeout per request (default 10)")
    p.set_defaults(handler=cmd_validate)


def collect_certificates(paths: Sequence[str]) -> list[tuple[str, bytes]]:
    """``(name, DER or PEM bytes)`` for each certificate in ``paths`` (files, directories)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*")
                                if f.is_file() and f.suffix.lower() in CERT_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise errors.InvalidInput(f"no such file or directory: {p}")
    out: list[tuple[str, bytes]] = []
    for f in files:
        data = f.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            blocks = data.split(b"-----BEGIN CERTIFICATE-----")[1:]
            for i, block in enumerate(blocks):
                pem = b"-----BEGIN CERTIFICATE-----" + block.split(b"-----END CERTIFICATE-----")[0]
                name = f"{f}#{i}" if len(blocks) > 1 else str(f)
                out.append((name, pem + b"-----END CERTIFICATE-----\n"))
        else:
            out.append((str(f), data))  # DER, or something the validator reports as malformed
    return out


def trust_for(args: argparse.Namespace) -> TrustStore:
    from cps_middleware.validation import TrustStore, igc_sante, igc_sante_test, load_certificates

    extra = [c for f in (args.trust_file or ()) for c in load_certificates(f)]
    if args.trust == "test":
        return igc_sante_test(extra) if extra else igc_sante_test()
    store = igc_sante()
    if extra:
        store = store + TrustStore.from_certificates(extra, name="given")
    return store


def cmd_validate(args: argparse.Namespace, io: Io) -> int:
    import datetime as dt

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cps_middleware.validation import Status, ValidatorBuilder

    items = collect_certificates(args.paths)
    builder = ValidatorBuilder().trust(trust_for(args))
    if args.at:
        builder = builder.time(dt.datetime.fromisoformat(args.at))
    checked: list[Any] = []  # with --fetch: the CheckedResult of each certificate
    if args.fetch:
        validate_many = _fetching_checker(args, builder).validate_many
    else:
        if args.soft_fail or args.ocsp_url or args.crl_mirror or args.cache_dir:
            raise errors.InvalidInput(
                "--soft-fail, --ocsp-url, --crl-mirror and --cache-dir go with --fetch")
        builder = (
            builder.crls(args.crl).revocation("hard") if args.crl else builder.revocation("off")
        )
        validate_many = builder.build().validate_many
    results: list[Any] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=io.err, transient=True, disable=args.json or not io.stderr.isatty(),
    ) as progress:
        task = progress.add_task("validation", total=len(items))
        chunk = 2000
        for i in range(0, len(items), chunk):
            batch = validate_many([d for _n, d in items[i:i + chunk]])
            if args.fetch:
                checked.extend(batch)
                results.extend(c.result for c in batch)
            else:
                results.extend(batch)
            progress.update(task, advance=min(chunk, len(items) - i))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    if args.json:
        rows = [
            {"file": name, "status": r.status.name, "reason": r.reason,
             "path": [c.subject.rfc4514_string() for c in r.path],
             "revocation": {"reason": r.revocation.reason,
                            "date": r.revocation.date.isoformat()} if r.revocation else None}
            for (name, _d), r in zip(items, results, strict=True)
        ]
        for row, c in zip(rows, checked, strict=False):  # --fetch: where the answers came from
            row["sources"] = _sources_json(c)
        io.json({
            "revocation": (
                f"fetched ({'soft' if args.soft_fail else 'hard'}-fail)" if args.fetch
                else "checked" if args.crl else "not checked"
            ),
            "counts": counts,
            "results": rows,
        })
    else:
        if args.verbose:
            detail = Table(title="Certificats / Certificates")
            for col in ("File", "Status", "Reason"):
                detail.add_column(col, overflow="fold")
            for (name, _d), r in zip(items, results, strict=True):
                detail.add_row(name, r.status.name, r.reason)
            io.out.print(detail)
        summary = Table(title=f"{len(results)} certificat(s)")
        summary.add_column("Status")
        summary.add_column("Count", justify="right")
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            style = "green" if name == Status.VALID.name else "red"
            summary.add_row(f"[{style}]{name}[/]", str(n))
        io.out.print(summary)
        if args.fetch:
            _print_fetch_notes(checked, args, io)
        elif not args.crl:
            io.err.print("revocation not checked (give --crl or --fetch)", style="yellow")
    bad = sum(n for k, n in counts.items() if k != Status.VALID.name)
    return EXIT_PROBLEM if bad else EXIT_OK


# --- --fetch: CRLs over HTTP and OCSP (cps_middleware.validation.revocation) -----------------


def _fetching_checker(args: argparse.Namespace, builder: Any) -> Any:
    from cps_middleware.validation.ocsp import OcspClient
    from cps_middleware.validation.revocation import (
        CrlFetcher,
        RevocationChecker,
        RevocationSources,
    )

    sources = RevocationSources.igc_sante()
    for spec in args.crl_mirror or ():
        prefix, sep, target = spec.partition("=")
        if not sep or not prefix or not target:
            raise errors.InvalidInput(
                f"--crl-mirror {spec!r}: expected PREFIX=URL",
                hint="e.g. --crl-mirror http://igc-sante.esante.gouv.fr/CRL/=http://mirror/crl/")
        sources = sources.with_mirror(prefix, target)
    ocsp_url = sources.ocsp_url if args.ocsp_url is None else args.ocsp_url
    if ocsp_url and ocsp_url.lower() == "none":
        ocsp_url = None
    timeout = args.fetch_timeout
    fetcher = CrlFetcher(
        args.cache_dir or "default", sources=sources, timeout=timeout, deadline=6 * timeout
    )
    ocsp = OcspClient(ocsp_url, timeout=timeout, deadline=2 * timeout) if ocsp_url else None
    return RevocationChecker(
        builder,
        failure="soft" if args.soft_fail else "hard",
        fetcher=fetcher,
        ocsp=ocsp,
        extra_crls=args.crl or (),
    )


def _sources_json(checked: Any) -> dict[str, Any]:
    return {
        "crls": [
            {"url": f.url, "outcome": f.outcome.value,
             "error": f.error.code_name if f.error is not None else None}
            for f in checked.crls
        ],
        "ocsp": [
            {"serial": format(a.serial, "X"), "status": a.status.value, "why": a.why or None,
             "delegated": a.delegated, "cached": a.cached}
            for a in checked.ocsp
        ],
        "soft_failed": checked.soft_failed,
    }


def _print_fetch_notes(checked: Sequence[Any], args: argparse.Namespace, io: Io) -> None:
    """One line per distinct CRL address and OCSP answer that is worth a look, then a summary."""
    from cps_middleware.messages import text

    lang = getattr(args, "lang", None)
    seen: set[str] = set()
    downloaded = cached = failed = 0
    for c in checked:
        for f in c.crls:
            if f.url in seen:
                continue
            seen.add(f.url)
            kind = f.outcome.value
            if kind in ("downloaded",):
                downloaded += 1
            elif kind in ("cached", "not_modified"):
                cached += 1
            elif kind != "ldap_ignored":
                failed += 1
            if args.verbose or kind in ("failed", "rejected", "cached_after_error"):
                io.err.print(f.message(lang), style="yellow" if f.error else None,
                             soft_wrap=True)
    ocsp = [a for c in checked for a in c.ocsp]
    for a in ocsp:
        if args.verbose or not a.ok:
            io.err.print(a.message(lang), soft_wrap=True)
    soft = sum(1 for c in checked if c.soft_failed)
    io.err.print(text(
        "revocation.cli_summary", lang, downloaded=downloaded, cached=cached, failed=failed,
        ocsp=len(ocsp), soft=soft,
        mode=text("revocation.mode_soft" if args.soft_fail else "revocation.mode_hard", lang),
    ), soft_wrap=True)
