"""``cps demo``: the whole library on a CPS test card and a virtual reader, then the diagnostic."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from cps_middleware.cli._common import EXIT_OK, EXIT_PROBLEM, Io, Subparsers, add_command

__all__ = ["cmd_demo", "register"]


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "demo",
        help="the whole library on a CPS test card and a virtual reader, then the diagnostic")
    p.add_argument("--cards-dir", metavar="DIR",
                   help="cards directory for the demo card (default: a temporary one)")
    p.add_argument("--port", type=int, default=35967,
                   help="vpcd port of the virtual reader (default: 35967)")
    p.set_defaults(handler=cmd_demo)


class _Demo:
    """`cps demo`: a CPS test card and a virtual PC/SC card, then the library end to end."""

    def __init__(self, args: argparse.Namespace, io: Io) -> None:
        self.args = args
        self.io = io
        self.lang = args.lang
        self.n = 0

    def say(self, fr: str, en: str) -> str:
        return fr if self.lang == "fr" else en

    def step(self, fr: str, en: str) -> None:
        self.n += 1
        self.io.out.rule(f"[bold]{self.n}. {self.say(fr, en)}", align="left")

    def run(self) -> int:
        import tempfile
        import time

        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            cards_dir = self.args.cards_dir or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cps-demo-"))
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cps-demo-work-")))
            code = self._run(stack, Path(cards_dir), work)
        self.io.out.print(self.say(f"Démo terminée en {time.monotonic() - t0:.1f} s.",
                                   f"Demo finished in {time.monotonic() - t0:.1f} s."),
                          style="dim")
        return code

    def _run(self, stack: contextlib.ExitStack, cards_dir: Path, work: Path) -> int:
        import os

        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509.oid import NameOID

        from cps_middleware import diagnostics
        from cps_middleware.card import open_card
        from cps_middleware.diagnostics.report import render_text
        from cps_middleware.discovery import discover
        from cps_middleware.pkcs11 import Pin
        from cps_middleware.selection import CertificateCriteria
        from cps_middleware.testing.pki import TestPki
        from cps_middleware.testing.servers import MutualTlsServer
        from cps_middleware.testing.testcard import CpsTestCard
        from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard
        from cps_middleware.tls.testssl import test_ssl
        from cps_middleware.validation import ValidatorBuilder, igc_sante_test

        out = self.io.out
        # --- the test card: a SoftHSM token behind the CPS test-token module, and the same
        # card's chip in a virtual PC/SC reader. The token's slot is named after that
        # reader (as OpenSC and the ANS middleware name theirs), so discovery shows one
        # card, not a PC/SC view and a PKCS#11 view.
        self.step("Création d'une carte CPS de test", "Creating a CPS test card")
        os.environ["CPS_TEST_CARDS_DIR"] = str(cards_dir)  # before the module is loaded
        pki = TestPki(seed="cps-demo")
        serial = CpsTestCard(cards_dir, name="demo", pki=pki).serial
        chip = VirtualCard(SimpleCpsCard.cps3(serial=serial), port=self.args.port)
        card = CpsTestCard(cards_dir, name="demo", pki=pki, reader=chip.reader).create()
        stack.callback(card.destroy)
        out.print(f"{card.label} — {self.say('n° de série', 'serial')} {card.serial} — "
                  f"PKCS#11: {card.module_path}")
        chip.insert()
        stack.callback(chip.remove)
        out.print(self.say(f"Puce CPS3 virtuelle insérée dans « {chip.reader} »",
                           f"Virtual CPS3 chip inserted in \u201c{chip.reader}\u201d"))

        self.step("Découverte des cartes", "Discovering the cards")
        for found in discover(module_path=card.module_path):
            if found.reader and found.reader != chip.reader and found.token is None:
                continue  # other programs' readers
            where = found.reader or (found.token.slot_description if found.token else "?")
            what = (found.generation.value if found.generation else
                    (found.token.generation or "CPS") if found.token else "?")
            token = (f" — {self.say('jeton', 'token')} {found.token.label!r} "
                     f"({self.say('n° de série', 'serial')} {found.token.serial})"
                     if found.token else "")
            who = f" — {found.holder}" if found.holder else ""
            out.print(f"• {where}: {what}{token}{who}")
            if found.pkcs11_error:
                out.print(f"  {found.pkcs11_error}", style="dim")

        self.step("Titulaire et code porteur", "Holder and PIN state")
        cps = stack.enter_context(open_card(card.module_path, serial=card.serial))
        holder = cps.holder
        out.print(str(holder))
        out.print(self.say(f"Code porteur : {cps.pin_status.value}, essais restants : "
                           f"{cps.pin_tries_left}",
                           f"PIN: {cps.pin_status.value}, tries left: {cps.pin_tries_left}"))

        self.step("Connexion avec le code porteur", "Logging in with the PIN")
        pin = Pin(card.pin)
        cps.login(pin)
        out.print(self.say("Connecté (code porteur de la carte de test).",
                           "Logged in (the test card's PIN)."))

        self.step("Choix du certificat d'authentification", "Selecting the authentication "
                  "certificate")
        chosen = cps.select(CertificateCriteria.for_tls())
        out.print(f"{chosen.certificate.label} + {chosen.key.label} "
                  f"({self.say('associés par', 'paired by')} {chosen.paired_by})")

        self.step("Validation de la chaîne (PKI de test, avec CRL)",
                  "Validating the chain (test PKI, with CRLs)")
        crls = [pki.crl("root"), pki.crl("intermediate")]
        with (ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates))
              .crls(crls).build()) as validator:
            verdict = validator.validate(chosen.certificate.certificate)
        path = " → ".join(
            str(n.value) for c in verdict.path
            for n in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)) or "-"
        out.print(f"{verdict.status.name}: {verdict.reason}")
        out.print(path, style="dim")

        trust_file = work / "igc-sante-test.pem"
        trust_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM)
                                        for c in pki.ca_certificates))
        crl_file = work / "crls.pem"
        crl_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in crls))

        self.step("Test SSL contre le serveur local à authentification mutuelle",
                  "Test SSL against the local mutual-TLS server")
        server = stack.enter_context(MutualTlsServer(client_cas=list(pki.ca_certificates)))
        report = test_ssl(server.url, cps, cafile=str(server.ca_file))
        out.print(report.to_text(), soft_wrap=True)
        seen = _server_saw(report.http_body)
        if seen:
            out.print(self.say(f"Le serveur a reconnu : {seen}", f"The server recognised: {seen}"))

        self.step("Diagnostic", "Diagnostic")
        options = diagnostics.DiagnosticOptions(
            reader=chip.reader, module=card.module_path, token=card.serial, pin=pin,
            trust="test", trust_files=(str(trust_file),), crl_files=(str(crl_file),),
            url=server.url, ca_file=str(server.ca_file),
        )
        run = diagnostics.run(options, lang=self.lang)
        render_text(run, out)
        return EXIT_PROBLEM if run.status is diagnostics.Status.ERROR else EXIT_OK


def _server_saw(body: str) -> str | None:
    """Who the local test server says the client certificate names (its JSON answer)."""
    try:
        client = json.loads(body).get("client") or {}
    except (ValueError, AttributeError):
        return None
    return f"{client.get('subject')} ({client.get('ps_id_nat')})" if client else None


def cmd_demo(args: argparse.Namespace, io: Io) -> int:
    return _Demo(args, io).run()
