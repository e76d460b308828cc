"""``cps test-ssl URL``: the ATSAM "Test SSL", one mutual-TLS request with the card."""

from __future__ import annotations

import argparse

from cps_middleware import errors
from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Io,
    Subparsers,
    add_command,
    make_pin,
    open_card,
    read_secret,
)

__all__ = ["cmd_test_ssl", "register"]


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "test-ssl", card=True,
        help="Test SSL: one mutual-TLS request to URL with the card (PIN read with no echo)")
    p.add_argument("url", metavar="URL")
    p.add_argument("--cafile", help="CA bundle to verify the server (default: system CAs)")
    p.add_argument("--timeout", type=float, default=20.0, help="network timeout in seconds")
    p.add_argument("--allow-final-try", action="store_true",
                   help="go on even when one PIN try is left")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_test_ssl)


def cmd_test_ssl(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.pkcs11 import PinStatus
    from cps_middleware.tls.testssl import test_ssl

    if not args.url.startswith("https://"):
        raise errors.InvalidInput("the Test SSL address must start with https://",
                                  hint="e.g. cps test-ssl https://testssl.asipsante.fr/")
    with open_card(args) as card:
        if not card.is_logged_in:
            if card.pin_status is PinStatus.PIN_PAD:
                io.err.print("Tapez le code porteur sur le lecteur / type the PIN on the reader")
                card.login(None)
            else:
                card.login(make_pin(read_secret("Code porteur CPS / CPS PIN: ")),
                           allow_final_try=args.allow_final_try)
        report = test_ssl(args.url, card, cafile=args.cafile, timeout=args.timeout)
        card.logout()
    if args.json:
        io.json({
            "url": report.url, "ok": report.ok, "reason": report.reason,
            "failure": report.failure.name if report.failure else None,
            "detail": report.detail, "protocol": report.protocol, "cipher": report.cipher,
            "client_signature": report.client_signature,
            "signature_scheme": report.signature_scheme,
            "client_certificate_sent": report.client_certificate_sent,
            "server_verified": report.server_verified,
            "server_chain": [c.to_dict() for c in report.server_chain],
            "server_chain_source": report.server_chain_source,
            "http_status": report.http_status,
            "holder": report.client_holder.to_dict() if report.client_holder else None,
            "timings_ms": report.timings_ms,
        })
    else:
        io.out.print(report.to_text(), style="green" if report.ok else "red", soft_wrap=True)
    return EXIT_OK if report.ok else EXIT_PROBLEM
