"""Diagnostic checks of the PKCS#11 part on SoftHSM CPS test cards (the CPS test-token module).

Each failure the field guide names is provoked for real: no middleware (an
explicit module path that does not exist), a file that is not a PKCS#11
module, the card pulled out, the PIN locked by three wrong PINs through the
library, an expired card, a revoked card (in the CRL of its CA), a card from
an untrusted hierarchy. The diagnostic is pointed at one card by its serial,
since other tests leave their cards in the shared cards directory.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cps_middleware import diagnostics, errors
from cps_middleware.diagnostics import DiagnosticOptions, Status
from cps_middleware.pkcs11 import Pin, open_token
from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.testcard import CpsTestCard

CARD_CHECKS = ["pkcs11.module", "pkcs11.token", "card.certificates", "card.holder",
               "cert.validity", "cert.chain", "cert.revocation", "pin.status"]


def _pem_file(path: Path, certs: list[object]) -> str:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]
                              for c in certs))
    return str(path)


def _crl_file(path: Path, pki: TestPki) -> str:
    path.write_bytes(b"".join(pki.crl(ca).public_bytes(serialization.Encoding.PEM)
                              for ca in ("root", "intermediate")))
    return str(path)


def _diag(card: CpsTestCard, lang: str = "fr", **kw: object) -> diagnostics.DiagnosticRun:
    opts = DiagnosticOptions(module=card.module_path, token=card.serial, **kw)  # type: ignore[arg-type]
    return diagnostics.run(opts, lang=lang, only=CARD_CHECKS)


@pytest.fixture(scope="module")
def other_pki() -> TestPki:
    """A second TEST hierarchy with the same names but other keys (and its own revocations)."""
    return TestPki(seed="diagnostics-other-hierarchy")


@pytest.fixture
def trust_and_crls(cps_pki: TestPki, tmp_path: Path) -> dict[str, object]:
    return {
        "trust_files": (_pem_file(tmp_path / "test-cas.pem", [cps_pki.root.certificate]),),
        "crl_files": (_crl_file(tmp_path / "crls.pem", cps_pki),),
    }


# --- middleware ----------------------------------------------------------------------------


def test_no_middleware_at_the_given_path() -> None:
    run = diagnostics.run(
        DiagnosticOptions(module="/opt/santesocial/CPS/lib/absent/libcps3_pkcs11_lux.so"),
        lang="fr", only=["pin.status"])
    module = run.result("pkcs11.module")
    assert module.status is Status.ERROR and module.reason == "pkcs11.no_module"
    assert module.details["attempts"] == [
        ["/opt/santesocial/CPS/lib/absent/libcps3_pkcs11_lux.so", "missing"]]
    assert module.remedy is not None and module.remedy.id == "middleware_missing"
    steps = " ".join(module.remedy.steps)
    for needle in ("ATSAM", "Test SSL", "sélectionnez le certificat", "code porteur",
                   "0 800 08 32 04"):
        assert needle in steps
    assert run.result("pkcs11.token").status is Status.SKIPPED
    assert run.result("pin.status").status is Status.SKIPPED


def test_a_file_that_is_not_a_pkcs11_module(tmp_path: Path) -> None:
    fake = tmp_path / "libcps3_pkcs11_lux.so"
    fake.write_bytes(b"this is not a shared library")
    run = diagnostics.run(DiagnosticOptions(module=str(fake)), lang="en",
                          only=["pkcs11.module"])
    module = run.result("pkcs11.module")
    assert module.status is Status.ERROR and module.reason == "pkcs11.module_unloadable"
    assert module.remedy is not None and module.remedy.id == "module_broken"
    assert str(fake) in module.seen


# --- a healthy card -------------------------------------------------------------------------


def test_a_healthy_test_card(cps_card: CpsTestCard, trust_and_crls: dict[str, object]) -> None:
    run = _diag(cps_card, "en", **trust_and_crls)
    assert run.result("pkcs11.module").status is Status.OK
    token = run.result("pkcs11.token")
    assert token.status is Status.OK and token.details["serial"] == cps_card.serial
    assert token.details["generation"] == "CPS3"
    certs = run.result("card.certificates")
    # The SoftHSM test token may hide private keys until login; a real CPS shows them.
    assert certs.reason in ("certs.ok", "certs.keys_hidden"), certs
    holder = run.result("card.holder")
    assert holder.status is Status.OK
    assert "JEAN MEDECIN-TEST" in holder.seen and "810001234567" in holder.seen
    assert "RPPS preceded by 8" in holder.seen
    assert holder.details["is_test_card"] is True
    assert run.result("cert.validity").status is Status.OK
    chain = run.result("cert.chain")
    assert chain.status is Status.OK, chain
    assert chain.details["results"]["auth"]["path"] == [
        "TEST AC IGC-SANTE FORT PERSONNES", "TEST AC RACINE IGC-SANTE FORT"]
    revocation = run.result("cert.revocation")
    assert revocation.status is Status.OK and revocation.reason == "revocation.ok"
    pin = run.result("pin.status")
    assert pin.status is Status.OK and pin.details["tries_left"] == 3


def test_revocation_is_unknown_without_crls_never_ok(
    cps_card: CpsTestCard, trust_and_crls: dict[str, object]
) -> None:
    run = _diag(cps_card, trust_files=trust_and_crls["trust_files"],
                crl_dir=str(Path(str(trust_and_crls["trust_files"][0])).parent / "none"))  # type: ignore[index]
    revocation = run.result("cert.revocation")
    assert revocation.status is Status.WARNING
    assert revocation.reason == "revocation.no_crl"
    assert revocation.remedy is not None and revocation.remedy.id == "revocation_unknown"


# --- the failures of the field guide ----------------------------------------------------------


def test_card_pulled_out(cps_card: CpsTestCard) -> None:
    cps_card.remove()
    try:
        run = _diag(cps_card, "en")
    finally:
        cps_card.insert()
    token = run.result("pkcs11.token")
    assert token.status is Status.ERROR and token.reason == "token.absent"
    assert token.remedy is not None and token.remedy.id == "token_missing"
    assert run.result("pin.status").status is Status.SKIPPED


def _wrong_pin(card: CpsTestCard, *, allow_final_try: bool = False) -> None:
    token = open_token(card.module_path, serial=card.serial)
    with pytest.raises((errors.PinIncorrect, errors.PinLocked)):
        token.login(Pin("0000"), allow_final_try=allow_final_try)


@pytest.fixture
def pin_card(cps_card_factory: Callable[..., CpsTestCard]) -> CpsTestCard:
    holder = TestHolder(given_name="PIN", surname="BLOQUE-TEST",
                        id_number="10000000097", card_number="8025000001/2800000097")
    return cps_card_factory(holder=holder, name="diag-pin")


def test_pin_final_try_then_locked(pin_card: CpsTestCard) -> None:
    cps_card = pin_card
    _wrong_pin(cps_card)
    run = _diag(cps_card, "fr")
    pin = run.result("pin.status")
    assert pin.status is Status.WARNING and pin.reason == "pin.count_low"
    assert pin.details["tries_left"] == 2

    _wrong_pin(cps_card)
    pin = _diag(cps_card, "fr").result("pin.status")
    assert pin.status is Status.WARNING and pin.reason == "pin.final_try"
    assert pin.remedy is not None and pin.remedy.id == "pin_final_try"
    assert pin.details["tries_left"] == 1

    _wrong_pin(cps_card, allow_final_try=True)
    before = cps_card.state()
    run = _diag(cps_card, "fr")
    pin = run.result("pin.status")
    assert pin.status is Status.ERROR and pin.reason == "pin.locked"
    assert pin.details["tries_left"] == 0
    assert pin.remedy is not None and pin.remedy.id == "pin_locked"
    steps = " ".join(pin.remedy.steps)
    assert "code de déblocage" in steps and "commandez une nouvelle carte" in steps
    assert cps_card.state() == before  # the diagnostic spent nothing


def test_expired_card(
    cps_card_factory: Callable[..., CpsTestCard], cps_pki: TestPki,
    trust_and_crls: dict[str, object],
) -> None:
    holder = TestHolder(given_name="ANCIEN", surname="EXPIRE-TEST",
                        id_number="10000000099", card_number="8025000001/2800000099")
    start = cps_pki.reference_time - _dt.timedelta(days=3 * 365 + 40)
    creds = cps_pki.issue_card(holder, not_before=start,
                               not_after=cps_pki.reference_time - _dt.timedelta(days=10))
    card = cps_card_factory(credentials=creds, name="diag-expired")
    run = _diag(card, "fr", **trust_and_crls)
    validity = run.result("cert.validity")
    assert validity.status is Status.ERROR and validity.reason == "validity.expired"
    assert validity.remedy is not None and validity.remedy.id == "card_expired"
    assert validity.remedy.title == "La carte CPS est expirée"
    chain = run.result("cert.chain")
    assert chain.status is Status.ERROR and chain.reason == "chain.expired"


@pytest.fixture
def other_card(
    cps_card_factory: Callable[..., CpsTestCard], other_pki: TestPki
) -> Iterator[CpsTestCard]:
    holder = TestHolder(given_name="AUTRE", surname="HIERARCHIE-TEST",
                        id_number="10000000098", card_number="8025000001/2800000098")
    yield cps_card_factory(pki=other_pki, holder=holder, name="diag-other-pki")


def test_untrusted_chain(other_card: CpsTestCard, trust_and_crls: dict[str, object]) -> None:
    # Same CA names as the trusted TEST hierarchy, other keys: the signatures give it away.
    run = _diag(other_card, "en", **trust_and_crls)
    chain = run.result("cert.chain")
    assert chain.status is Status.ERROR, chain
    assert chain.reason in ("chain.bad_signature", "chain.unknown_issuer")
    assert chain.remedy is not None and chain.remedy.id == "untrusted_chain"
    assert run.result("cert.revocation").status is Status.SKIPPED


def test_test_card_against_production_igc_sante(other_card: CpsTestCard) -> None:
    run = _diag(other_card, "fr", trust="production")
    chain = run.result("cert.chain")
    assert chain.status is Status.ERROR and chain.reason == "chain.unknown_issuer"
    assert "IGC-Santé" in chain.seen
    assert chain.remedy is not None
    assert chain.remedy.title == "Certificat non reconnu par l'IGC-Santé"


def test_revoked_card(other_card: CpsTestCard, other_pki: TestPki, tmp_path: Path) -> None:
    auth = other_card.credentials.authentication.certificate
    other_pki.revoke(auth)
    run = _diag(
        other_card, "fr",
        trust_files=(_pem_file(tmp_path / "other-root.pem", [other_pki.root.certificate]),),
        crl_files=(_crl_file(tmp_path / "other-crls.pem", other_pki),),
    )
    assert run.result("cert.chain").status is Status.OK
    revocation = run.result("cert.revocation")
    assert revocation.status is Status.ERROR and revocation.reason == "revocation.revoked"
    assert revocation.details["revocation_reason"] == "key_compromise"
    assert revocation.remedy is not None and revocation.remedy.id == "revoked"
    assert "révoqué" in revocation.seen


OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"


@pytest.mark.pcsc
@pytest.mark.skipif(not Path(OPENSC).is_file(), reason="OpenSC's PKCS#11 module is not installed")
def test_virtual_cps3_through_opensc_cannot_sign_warning(cps_pki: TestPki, tmp_path: Path) -> None:
    """A virtual CPS3 (IAS-ECC) in vpcd reader 35967, read by OpenSC's own module.

    OpenSC shows 16 virtual slots by default (4 readers x 4): this area's reader is
    the fifth, so the diagnostic runs in a child process with an OpenSC
    configuration that raises the number of slots.
    """
    import os
    import subprocess
    import sys

    from cps_middleware.testing.cps3image import VirtualCps3

    creds = cps_pki.issue_card(TestHolder(given_name="OPEN", surname="SC-TEST",
                                          id_number="10000000094",
                                          card_number="8025000001/2800000094"))
    conf = tmp_path / "opensc.conf"
    conf.write_text("app default {\n}\napp opensc-pkcs11 {\n  pkcs11 {\n"
                    "    max_virtual_slots = 64;\n  }\n}\n")
    trust = _pem_file(tmp_path / "test-cas.pem",
                      [cps_pki.root.certificate, cps_pki.intermediate.certificate])
    with VirtualCps3(creds, port=35967) as card:
        card.set_pin_tries(1)
        proc = subprocess.run(
            [sys.executable, "-m", "cps_middleware.cli", "diag", "--json", "--lang", "fr",
             "--module", OPENSC, "--reader", card.reader, "--trust-file", trust],
            env={**os.environ, "OPENSC_CONF": str(conf)},
            capture_output=True, text=True, timeout=120,
        )
    run = diagnostics.DiagnosticRun.from_json(proc.stdout)
    module = run.result("pkcs11.module")
    assert module.status is Status.WARNING and module.reason == "pkcs11.opensc"
    assert module.remedy is not None and module.remedy.id == "opensc_cannot_sign"
    assert module.details["middleware"] == "OpenSC" and module.details["middleware_version"]
    assert "OpenSC" in module.seen and "signature" in module.seen  # named, and why, in French
    assert "installez le logiciel de la carte CPS de l'ANS" in " ".join(module.remedy.steps)
    assert run.result("card.atr").reason == "card.cps"
    assert run.result("pkcs11.token").status is Status.OK
    assert "OPEN SC-TEST" in run.result("card.holder").seen
    assert run.result("cert.chain").status is Status.OK
    pin = run.result("pin.status")
    assert pin.status is Status.WARNING and pin.reason == "pin.final_try"
    assert proc.returncode == 0  # warnings only


def test_revocation_from_a_crl_cache_directory(
    cps_card: CpsTestCard, cps_pki: TestPki, tmp_path: Path
) -> None:
    cache = tmp_path / "crl-cache"
    cache.mkdir()
    for ca in ("root", "intermediate"):
        (cache / f"{ca}.crl").write_bytes(cps_pki.crl(ca).public_bytes(serialization.Encoding.DER))
    run = _diag(cps_card, "en",
                trust_files=(_pem_file(tmp_path / "root.pem", [cps_pki.root.certificate]),),
                crl_dir=str(cache))
    revocation = run.result("cert.revocation")
    assert revocation.status is Status.OK, revocation
    assert revocation.details["crl_sources"] == [str(cache)]
    assert revocation.details["crls"] == 2


def test_card_expiring_soon_is_a_warning(cps_card: CpsTestCard) -> None:
    not_after = cps_card.credentials.authentication.certificate.not_valid_after_utc
    run = _diag(cps_card, "fr", at=not_after - _dt.timedelta(days=10))
    validity = run.result("cert.validity")
    assert validity.status is Status.WARNING and validity.reason == "validity.expiring"
    assert "expire dans 10 jour(s)" in validity.seen
    assert validity.remedy is not None and validity.remedy.id == "card_expiring"
