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
    builder = (
        builder.crls(args.crl).revocation("hard") if args.crl else builder.revocation("off")
    )
    if args.at:
        builder = builder.time(dt.datetime.fromisoformat(args.at))
    results: list[Any] = []
    with builder.build() as validator, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=io.err, transient=True, disable=args.json or not io.stderr.isatty(),
    ) as progress:
        task = progress.add_task("validation", total=len(items))
        chunk = 2000
        for i in range(0, len(items), chunk):
            results.extend(validator.validate_many([d for _n, d in items[i:i + chunk]]))
            progress.update(task, advance=min(chunk, len(items) - i))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    if args.json:
        io.json({
            "revocation": "checked" if args.crl else "not checked",
            "counts": counts,
            "results": [
                {"file": name, "status": r.status.name, "reason": r.reason,
                 "path": [c.subject.rfc4514_string() for c in r.path],
                 "revocation": {"reason": r.revocation.reason,
                                "date": r.revocation.date.isoformat()} if r.revocation else None}
                for (name, _d), r in zip(items, results, strict=True)
            ],
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
        if not args.crl:
            io.err.print("revocation not checked (give --crl)", style="yellow")
    bad = sum(n for k, n in counts.items() if k != Status.VALID.name)
    return EXIT_PROBLEM if bad else EXIT_OK
