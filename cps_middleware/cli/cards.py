"""``cps readers``, ``cps cards``, ``cps info``, ``cps certs``: what is plugged in, and the card."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cps_middleware import errors
from cps_middleware.cli._common import EXIT_OK, Io, Subparsers, add_command, open_card

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["cmd_cards", "cmd_certs", "cmd_info", "cmd_readers", "print_certs", "register"]


def register(sub: Subparsers) -> None:
    p = add_command(sub, "readers", help="list card readers and the cards in them")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_readers)

    p = add_command(sub, "cards", help="cards present: reader, generation, token, holder")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-pkcs11", action="store_true", help="PC/SC only (no middleware)")
    p.set_defaults(handler=cmd_cards)

    p = add_command(sub, "info", card=True, help="holder identity and certificates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_info)

    p = add_command(sub, "certs", card=True, help="certificates on the card")
    p.add_argument("--export", metavar="DIR", help="write each certificate as PEM in DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_certs)


def cmd_readers(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.pcsc.readers import list_readers

    readers = list_readers(allow_empty=True)
    if args.reader:
        readers = [r for r in readers if args.reader.casefold() in r.name.casefold()]
    if args.json:
        io.json([
            {
                "reader": r.name,
                "card_present": r.card_present,
                "atr": r.atr.hex(" ").upper() if r.atr else None,
                "generation": r.generation.value if r.generation else None,
                "interface": r.identification.interface.value if r.identification else None,
                "exclusive": r.exclusive,
                "mute": r.mute,
            }
            for r in readers
        ])
        return EXIT_OK
    if not readers:
        raise errors.NoReaders("no PC/SC reader found", function="SCardListReaders")
    table = Table(title="Lecteurs / Readers")
    for col in ("Reader", "Card", "ATR", "CPS"):
        table.add_column(col)
    for r in readers:
        table.add_row(
            r.name,
            ("mute" if r.mute else "yes") if r.card_present else "-",
            r.atr.hex(" ").upper() if r.atr else "",
            r.generation.value if r.generation else "",
        )
    io.out.print(table)
    return EXIT_OK


def cmd_cards(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.discovery import discover

    cards = discover(module_path=args.module, pkcs11=not args.no_pkcs11)
    if args.reader:
        cards = [c for c in cards if c.reader and args.reader.casefold() in c.reader.casefold()]
    if args.json:
        io.json([
            {
                "reader": c.reader,
                "atr": c.atr_hex,
                "generation": c.generation.value if c.generation else None,
                "interface": c.interface.value,
                "is_cps": c.is_cps,
                "token": c.token.label if c.token else None,
                "serial": c.token.serial if c.token else None,
                "holder": c.holder.to_dict() if c.holder else None,
                "pkcs11_module": c.pkcs11_module,
                "pkcs11_error": c.pkcs11_error,
            }
            for c in cards
        ])
        return EXIT_OK
    if not cards:
        io.out.print("Aucune carte / no card")
        return EXIT_OK
    table = Table(title="Cartes / Cards")
    for col in ("Reader", "Card", "Token", "Holder"):
        table.add_column(col, overflow="fold")
    for c in cards:
        kind = c.generation.value if c.generation else ("CPS" if c.is_cps else "?")
        table.add_row(
            c.reader or "-",
            f"{kind} {c.interface.value}" if c.atr else kind,
            f"{c.token.label} ({c.token.serial})" if c.token else (c.pkcs11_error or "-"),
            str(c.holder) if c.holder else "-",
        )
    io.out.print(table)
    return EXIT_OK


def cert_row(cert: x509.Certificate) -> dict[str, Any]:
    from cps_middleware.cards.identity import practitioner_from_certificate

    who = practitioner_from_certificate(cert)
    name = (f"{who.display_name} ({who.ps_id_nat})" if who.ps_id_nat
            else who.common_name or cert.subject.rfc4514_string())
    return {
        "name": name,
        "subject": cert.subject.rfc4514_string(),
        "issuer": who.issuer_cn or cert.issuer.rfc4514_string(),
        "usage": who.usage.value,
        "not_before": who.not_before.isoformat(),
        "not_after": who.not_after.isoformat(),
        "serial": f"{cert.serial_number:X}",
        "sha256": who.fingerprint_sha256,
    }


def cmd_info(args: argparse.Namespace, io: Io) -> int:
    with open_card(args) as card:
        holder = card.holder
        certs = card.certificates()
        data = {
            "label": card.label,
            "serial": card.serial,
            "generation": card.generation,
            "reader": card.reader,
            "pin_status": card.pin_status.value,
            "pin_tries_left": card.pin_tries_left,
            "holder": holder.to_dict(),
            "certificates": [cert_row(c) for c in certs],
        }
    if args.json:
        io.json(data)
        return EXIT_OK
    table = Table(title=f"{data['label']} — {data['generation'] or 'CPS'} — {data['serial']}",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("Titulaire / Holder", holder.display_name),
        ("Profession", f"{holder.profession.label} ({holder.profession.code})"
         if holder.profession else "-"),
        ("Identifiant national", holder.ps_id_nat or "-"),
        ("RPPS / ADELI", holder.rpps or holder.adeli or "-"),
        ("Carte / Card", (holder.card_number or "-") + (" (TEST)" if holder.is_test_card else "")),
        ("Valide jusqu'au / until", holder.not_after.date().isoformat()),
        ("Code porteur / PIN", f"{data['pin_status']} ({data['pin_tries_left']})"),
        ("Lecteur / Reader", str(data["reader"])),
    ]
    for k, v in rows:
        table.add_row(k, v)
    io.out.print(table)
    print_certs(io, data["certificates"])  # type: ignore[arg-type]
    return EXIT_OK


def print_certs(io: Io, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Certificats / Certificates")
    for col in ("Usage", "Name", "Issuer", "Valid until"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["usage"], r["name"], r["issuer"], r["not_after"][:10])
    io.out.print(table)


def cmd_certs(args: argparse.Namespace, io: Io) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    with open_card(args) as card:
        stored = card.token.certificates()
    rows = [dict(cert_row(c.certificate), label=c.label) for c in stored]
    if args.export:
        out = Path(args.export)
        out.mkdir(parents=True, exist_ok=True)
        for c, row in zip(stored, rows, strict=True):
            name = "".join(ch if ch.isalnum() else "-" for ch in (c.label or row["serial"]))
            path = out / f"{name.strip('-').lower()}.pem"
            path.write_bytes(c.certificate.public_bytes(Encoding.PEM))
            row["file"] = str(path)
    if args.json:
        io.json(rows)
    else:
        print_certs(io, rows)
        for row in rows:
            if "file" in row:
                io.out.print(f"{row['label']} → {row['file']}")
    return EXIT_OK
