"""``cps demo``: the whole library on a CPS test card and a virtual reader, then the diagnostic.

Self-sufficient after ``pip install``: the card is a SoftHSM token behind the
CPS test-token module, and its chip goes into a virtual PC/SC reader (vpcd).
When no pcscd runs, the demo starts its own (with the vpcd readers) if it can,
and stops it by PID at the end; when it cannot (pcscd or the vpcd driver not
installed, no administrator rights, a pcscd without the virtual reader), the
whole demo runs on the PKCS#11 path, after one line saying what was skipped
and how to enable it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

from cps_middleware import errors
from cps_middleware.cli._common import EXIT_OK, EXIT_PROBLEM, Io, Subparsers, add_command, tcp_port

__all__ = ["cmd_demo", "register"]


def register(sub: Subparsers) -> None:
    """Add ``demo`` to the ``cps`` parser."""
    p = add_command(
        sub, "demo",
        help="the whole library on a CPS test card and a virtual reader, then the diagnostic")
    p.add_argument("--cards-dir", metavar="DIR",
                   help="cards directory for the demo card (default: a temporary one)")
    p.add_argument("--port", type=tcp_port(), default=35967,
                   help="vpcd port of the virtual reader (default: 35967)")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, io: Io) -> int:
    """``cps demo``: the whole library end to end on a test card (see the module doc)."""
    return _Demo(args, io).run()


class _Demo:
    """`cps demo`: a CPS test card and a virtual PC/SC card, then the library end to end."""

    def __init__(self, args: argparse.Namespace, io: Io) -> None:
        self.args = args
        self.io = io
        self.n = 0

    def step(self, code: str) -> None:
        from rich.text import Text

        self.n += 1
        self.io.out.rule(Text(f"{self.n}. {self.io.t(code)}", style="bold"), align="left")

    def run(self) -> int:
        import tempfile
        import time

        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            cards_dir = self.args.cards_dir or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cps-demo-"))
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cps-demo-work-")))
            code = self._run(stack, Path(cards_dir), work)
        self.io.out.print(self.io.t("demo.finished", seconds=f"{time.monotonic() - t0:.1f}"),
                          style="dim")
        return code

    # --- PC/SC: the running pcscd, one started here, or none -------------------------------

    def _reader(self, stack: contextlib.ExitStack, work: Path) -> str | None:
        """The empty vpcd reader for the chip, or ``None`` (after a note) for PKCS#11 only."""
        from cps_middleware.pcsc.readers import list_readers
        from cps_middleware.testing.vpcd import vpcd_reader_name

        io = self.io
        try:
            reader = vpcd_reader_name(self.args.port)
        except errors.TestCardError:
            self._note(io.t("demo.why_port", port=self.args.port), io.t("demo.how_port"))
            return None
        try:
            readers = list_readers(allow_empty=True)
        except errors.CpsError:
            readers = None  # no pcscd answers
        if readers is not None:
            found = [r for r in readers if r.name == reader]
            if not found:
                self._note(io.t("demo.why_other_pcscd", reader=reader),
                           io.t("demo.how_other_pcscd"))
                return None
            if found[0].card_present:
                self._note(io.t("demo.why_reader_busy", reader=reader), io.t("demo.how_port"))
                return None
            return reader
        why = self._cannot_start_pcscd()
        if why is not None:
            self._note(*why)
            return None
        from cps_middleware.testing.pcscd import PcscDaemon

        daemon = PcscDaemon(pidfile=work / "pcscd.pid")
        try:
            pid = daemon.start()
        except (errors.CpsError, OSError) as exc:
            with contextlib.suppress(errors.CpsError, OSError):
                daemon.stop()
            self._note(io.t("demo.why_start_failed", reason=str(exc)), io.t("demo.how_root"))
            return None
        stack.callback(daemon.stop)
        io.out.print(io.t("demo.pcscd_started", pid=pid), style="dim")
        return reader

    def _cannot_start_pcscd(self) -> tuple[str, str] | None:
        """Why this process cannot start pcscd with vpcd readers (what, how), or ``None``."""
        from cps_middleware.testing.pcscd import find_pcscd, find_vpcd_driver

        io = self.io
        if find_pcscd() is None:
            return io.t("demo.why_no_pcscd"), io.t("demo.how_install")
        try:
            find_vpcd_driver()
        except errors.TestCardError:
            return io.t("demo.why_no_vpcd"), io.t("demo.how_install")
        run_dir = Path("/run/pcscd")
        writable = (os.access(run_dir, os.W_OK) if run_dir.exists()
                    else os.access(run_dir.parent, os.W_OK))
        if not writable:
            return io.t("demo.why_not_root"), io.t("demo.how_root")
        return None

    def _note(self, why: str, how: str) -> None:
        self.io.out.print(self.io.t("demo.pkcs11_only", why=why, how=how), style="yellow",
                          soft_wrap=True)

    # --- the demo ---------------------------------------------------------------------------

    def _run(self, stack: contextlib.ExitStack, cards_dir: Path, work: Path) -> int:
        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509.oid import NameOID

        from cps_middleware import diagnostics
        from cps_middleware.card import open_card
        from cps_middleware.cli.pin import describe_pin
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

        io, out = self.io, self.io.out
        # --- the test card: a SoftHSM token behind the CPS test-token module, and the same
        # card's chip in a virtual PC/SC reader. The token's slot is named after that
        # reader (as OpenSC and the ANS middleware name theirs), so discovery shows one
        # card, not a PC/SC view and a PKCS#11 view.
        self.step("demo.step_card")
        reader = self._reader(stack, work)
        os.environ["CPS_TEST_CARDS_DIR"] = str(cards_dir)  # before the module is loaded
        pki = TestPki(seed="cps-demo")
        serial = CpsTestCard(cards_dir, name="demo", pki=pki).serial
        chip = (VirtualCard(SimpleCpsCard.cps3(serial=serial), port=self.args.port)
                if reader else None)
        card = CpsTestCard(cards_dir, name="demo", pki=pki,
                           reader=chip.reader if chip else None).create()
        stack.callback(card.destroy)
        out.print(io.t("demo.card_made", label=card.label, serial=card.serial,
                       module=card.module_path), soft_wrap=True)
        if chip is not None:
            chip.insert()
            stack.callback(chip.remove)
            out.print(io.t("demo.chip_inserted", reader=chip.reader))

        self.step("demo.step_discovery")
        for found in discover(module_path=card.module_path):
            if found.reader and (chip is None or found.reader != chip.reader) \
                    and found.token is None:
                continue  # other programs' readers
            where = found.reader or (found.token.slot_description if found.token else "?")
            what = (found.generation.value if found.generation else
                    (found.token.generation or "CPS") if found.token else "?")
            token = (" — " + io.t("demo.token", label=found.token.label,
                                  serial=found.token.serial) if found.token else "")
            who = f" — {found.holder.describe(io.lang)}" if found.holder else ""
            out.print(f"• {where} : {what}{token}{who}" if io.lang == "fr"
                      else f"• {where}: {what}{token}{who}")
            if found.pkcs11_error:
                out.print(f"  {found.pkcs11_error}", style="dim")

        self.step("demo.step_holder")
        cps = stack.enter_context(open_card(card.module_path, serial=card.serial))
        out.print(cps.holder.describe(io.lang))
        out.print(io.t("pin.status_line",
                       status=describe_pin(io, cps.pin_status, cps.pin_tries_left)))

        self.step("demo.step_login")
        pin = Pin(card.pin)
        cps.login(pin)
        out.print(io.t("demo.logged_in"))

        self.step("demo.step_select")
        chosen = cps.select(CertificateCriteria.for_tls())
        out.print(io.t("demo.selected", certificate=chosen.certificate.label,
                       key=chosen.key.label, paired_by=chosen.paired_by))

        self.step("demo.step_validate")
        crls = [pki.crl("root"), pki.crl("intermediate")]
        with (ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates))
              .crls(crls).build()) as validator:
            verdict = validator.validate(chosen.certificate.certificate)
        names = [str(n.value) for c in verdict.path
                 for n in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if verdict.ok:
            out.print(io.t("validation.verdict_valid", anchor=names[-1] if names else "-",
                           n=len(verdict.path)), style="green")
        else:
            out.print(io.t("validation.verdict_invalid",
                           status=io.t(f"validation.{verdict.status.name}"),
                           detail=verdict.reason), style="red")
        out.print(" → ".join(names) or "-", style="dim")

        trust_file = work / "igc-sante-test.pem"
        trust_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM)
                                        for c in pki.ca_certificates))
        crl_file = work / "crls.pem"
        crl_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in crls))

        self.step("demo.step_test_ssl")
        server = stack.enter_context(MutualTlsServer(client_cas=list(pki.ca_certificates)))
        report = test_ssl(server.url, cps, cafile=str(server.ca_file))
        out.print(report.to_text(io.lang), soft_wrap=True)
        seen = _server_saw(report.http_body)
        if seen:
            out.print(io.t("demo.server_saw", who=seen), soft_wrap=True)

        self.step("demo.step_diag")
        options = diagnostics.DiagnosticOptions(
            reader=chip.reader if chip else None, module=card.module_path, token=card.serial,
            pin=pin, trust="test", trust_files=(str(trust_file),), crl_files=(str(crl_file),),
            url=server.url, ca_file=str(server.ca_file),
        )
        # The demo's card lives in a temporary folder: the browsers are not set up for
        # it, so the browser checks (cps browser setup) are not part of the demo.
        checks = [c for c in diagnostics.DEFAULT_CHECKS if not c.id.startswith("browser.")]
        run = diagnostics.run(options, lang=io.lang, checks=checks)
        render_text(run, out)
        return EXIT_PROBLEM if run.status is diagnostics.Status.ERROR else EXIT_OK


def _server_saw(body: str) -> str | None:
    """Who the local test server says the client certificate names (its JSON answer)."""
    try:
        client = json.loads(body).get("client") or {}
    except (ValueError, AttributeError):
        return None
    return f"{client.get('subject')} ({client.get('ps_id_nat')})" if client else None
