"""The checks of the CPS diagnostic, in the order a doctor's problem is tracked down.

PC/SC service → readers → card present → ATR recognised; PKCS#11 module →
token → certificates and keys → holder → validity dates → chain to IGC-Santé →
revocation; PIN state (never spending a try); Test SSL against a URL.

Each check is a function of a :class:`~cps_middleware.diagnostics.framework.CheckContext`
returning a :class:`~cps_middleware.diagnostics.framework.Finding`; what one check
opens or finds (the PC/SC context, the module, the token, the certificates) is
put in ``ctx.data`` for the next ones, and closed by the framework at the end.
Only this package knows every layer of the library.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.x509.oid import NameOID

from cps_middleware.card import CpsCard
from cps_middleware.cards._x509 import is_ca
from cps_middleware.cards.atr import CardGeneration, CardInterface
from cps_middleware.cards.identity import Practitioner
from cps_middleware.cards.support import Middleware, middleware_of, support
from cps_middleware.diagnostics.checks_browser import BROWSER_CHECKS
from cps_middleware.diagnostics.framework import (
    Check,
    CheckContext,
    CheckFunction,
    Finding,
    Status,
    error_details,
)
from cps_middleware.errors import (
    CpsError,
    FinalTryRefused,
    InvalidInput,
    ModuleLoadError,
    PcscServiceUnavailable,
    PinIncorrect,
    PinLocked,
    SelectionError,
)
from cps_middleware.messages import resolve_lang, text
from cps_middleware.pcsc.context import PcscContext
from cps_middleware.pcsc.readers import ReaderInfo, list_readers
from cps_middleware.pkcs11 import Module, Pin, PinStatus, Token, TokenInfo, load_module
from cps_middleware.selection import CertificateCandidate, CertificateCriteria, Selected
from cps_middleware.tls.testssl import Failure, test_ssl
from cps_middleware.validation import Status as VStatus
from cps_middleware.validation import (
    TrustStore,
    ValidationResult,
    Validator,
    ValidatorBuilder,
    igc_sante,
    igc_sante_test,
    load_certificates,
    load_crls,
)

__all__ = ["DEFAULT_CHECKS", "DEFAULT_CRL_DIR", "DiagnosticOptions", "check_ids"]

#: Where CRLs downloaded earlier are looked for when no ``crl_dir`` is given.
DEFAULT_CRL_DIR = Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
) / "cps-middleware" / "crls"


@dataclass(frozen=True)
class DiagnosticOptions:
    """What the diagnostic looks at; every field has a sensible default.

    ``reader``: only readers whose name contains this text (case-insensitive).
    ``module``: an explicit PKCS#11 module path (else the usual discovery).
    ``token``: the label or serial of the card to look at when several are present.
    ``url``: run the Test SSL against it (``None``: that check is skipped);
    ``ca_file``: CA bundle for the server's certificate; ``pin``: the holder PIN
    for the Test SSL only (a :class:`cps_middleware.pkcs11.Pin`, never serialised).
    ``trust``: ``"production"`` (IGC-Santé), ``"test"`` (IGC-Santé TEST), or
    ``"auto"`` (the one the card's issuer belongs to); ``trust_files`` adds CA
    certificates (PEM/DER) to trust. ``crl_files`` and ``crl_dir`` give CRLs;
    without them revocation is "unknown", never "ok". ``at``: the time to judge
    validity at (default: now).
    """

    reader: str | None = None
    module: str | None = None
    token: str | None = None
    url: str | None = None
    ca_file: str | None = None
    pin: Pin | None = field(default=None, repr=False, compare=False)
    trust: str = "auto"
    trust_files: tuple[str, ...] = ()
    crl_files: tuple[str, ...] = ()
    crl_dir: str | None = None
    at: _dt.datetime | None = None
    expiry_warning_days: int = 30
    tls_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.trust not in ("auto", "production", "test"):
            raise InvalidInput(f"trust must be 'auto', 'production' or 'test', not {self.trust!r}")
        if self.pin is not None and not isinstance(self.pin, Pin):
            raise InvalidInput("pin must be a cps_middleware.pkcs11.Pin",
                               hint="wrap the digits: Pin('1234')")
        if self.at is not None and self.at.tzinfo is None:
            object.__setattr__(self, "at", self.at.replace(tzinfo=_dt.UTC))

    def summary(self) -> dict[str, Any]:
        """The options as JSON data, without the PIN."""
        return {
            "reader": self.reader,
            "module": self.module,
            "token": self.token,
            "url": self.url,
            "ca_file": self.ca_file,
            "pin_given": self.pin is not None,
            "trust": self.trust,
            "trust_files": list(self.trust_files),
            "crl_files": list(self.crl_files),
            "crl_dir": self.crl_dir,
            "at": self.at.isoformat() if self.at else None,
        }

    def now(self) -> _dt.datetime:
        """The time to judge validity at: ``at``, else the clock."""
        return self.at or _dt.datetime.now(_dt.UTC)


def _opts(ctx: CheckContext) -> DiagnosticOptions:
    opts = ctx.options
    assert isinstance(opts, DiagnosticOptions)
    return opts


# --- PC/SC ---------------------------------------------------------------------------


def check_pcsc_service(ctx: CheckContext) -> Finding:
    pcsc = PcscContext()
    ctx.resources.callback(pcsc.release)
    try:
        pcsc.handle()
    except PcscServiceUnavailable as exc:
        return ctx.error(
            "pcsc.no_service",
            "Le service des cartes à puce (PC/SC) ne répond pas.",
            "The smart card service (PC/SC) does not answer.",
            "pcsc_service",
            **error_details(exc),
        )
    ctx.data["pcsc"] = pcsc
    return ctx.ok(
        "pcsc.ok",
        "Le service des cartes à puce (PC/SC) répond.",
        "The smart card service (PC/SC) answers.",
    )


def check_readers(ctx: CheckContext) -> Finding:
    opts = _opts(ctx)
    readers = list_readers(ctx.data["pcsc"], allow_empty=True)
    names = [r.name for r in readers]
    if opts.reader:
        wanted = opts.reader.casefold()
        readers = [r for r in readers if wanted in r.name.casefold()]
    ctx.data["readers"] = readers
    if not readers:
        if opts.reader and names:
            return ctx.error(
                "pcsc.no_matching_reader",
                f"Aucun lecteur ne correspond à « {opts.reader} » parmi {len(names)} lecteur(s).",
                f"No reader matches \u201c{opts.reader}\u201d among {len(names)} reader(s).",
                "reader",
                filter=opts.reader,
                readers_seen=names,
            )
        return ctx.error(
            "pcsc.no_reader",
            "Aucun lecteur de cartes n'est branché.",
            "No card reader is connected.",
            "reader",
        )
    shown = ", ".join(r.name for r in readers)
    return ctx.ok(
        "pcsc.readers",
        f"{len(readers)} lecteur(s) : {shown}.",
        f"{len(readers)} reader(s): {shown}.",
        readers=[r.name for r in readers],
    )


def _reader_details(r: ReaderInfo) -> dict[str, Any]:
    return {
        "reader": r.name,
        "atr": r.atr.hex(" ").upper() if r.atr else None,
        "mute": r.mute,
        "exclusive": r.exclusive,
        "in_use": r.in_use,
        "state_flags": f"0x{r.state_flags:04X}",
    }


def check_card_present(ctx: CheckContext) -> Finding:
    readers: list[ReaderInfo] = ctx.data["readers"]
    present = [r for r in readers if r.card_present]
    answering = [r for r in present if not r.mute and r.atr]
    ctx.data["cards"] = answering
    if not present:
        return ctx.error(
            "card.absent",
            "Aucune carte dans le(s) lecteur(s).",
            "No card in the reader(s).",
            "card_insert",
            readers=[r.name for r in readers],
        )
    if not answering:
        return ctx.error(
            "card.mute",
            f"Une carte est dans « {present[0].name} » mais ne répond pas.",
            f"A card is in \u201c{present[0].name}\u201d but does not answer.",
            "card_wrong_way",
            cards=[_reader_details(r) for r in present],
        )
    if all(r.exclusive for r in answering):
        return ctx.warning(
            "card.exclusive",
            "La carte est réservée par un autre programme.",
            "The card is held exclusively by another program.",
            "card_in_use",
            cards=[_reader_details(r) for r in answering],
        )
    where = ", ".join(r.name for r in answering)
    return ctx.ok(
        "card.present",
        f"Carte présente dans : {where}.",
        f"Card present in: {where}.",
        cards=[_reader_details(r) for r in answering],
    )


def check_atr(ctx: CheckContext) -> Finding:
    cards: list[ReaderInfo] = ctx.data["cards"]
    cps = [r for r in cards if r.is_cps]
    details = {
        "cards": [
            {
                **_reader_details(r),
                "generation": r.generation.value if r.generation else None,
                "interface": r.identification.interface.value if r.identification else None,
                "pattern": r.identification.name if r.identification else None,
                "atr_problems": list(r.identification.parsed.problems) if r.identification else [],
            }
            for r in cards
        ]
    }
    if not cps:
        atr = cards[0].atr.hex(" ").upper() if cards[0].atr else "?"
        ident = cards[0].identification
        if ident is not None and ident.parsed.convention == "invalid":
            # A garbled answer-to-reset (no valid TS byte): the chip is not read properly,
            # as with a card inserted the wrong way or dirty contacts.
            return ctx.error(
                "card.garbled_atr",
                f"La carte de « {cards[0].name} » répond mal (ATR illisible : {atr}).",
                f"The card in \u201c{cards[0].name}\u201d answers badly (unreadable ATR: {atr}).",
                "card_wrong_way",
                **details,
            )
        return ctx.error(
            "card.not_cps",
            f"La carte de « {cards[0].name} » n'est pas une carte CPS (ATR {atr}).",
            f"The card in \u201c{cards[0].name}\u201d is not a CPS card (ATR {atr}).",
            "card_unknown",
            **details,
        )
    ctx.data["cps_readers"] = cps
    first = cps[0]
    assert first.identification is not None
    ident = first.identification
    gen = ident.generation.value
    iface_fr = {"contact": "contact", "contactless": "sans contact"}.get(ident.interface.value, "?")
    if ident.interface is CardInterface.CONTACTLESS:
        return ctx.warning(
            "card.contactless",
            f"Carte {gen} lue en mode sans contact : ce mode n'a ni code porteur ni signature "
            "(seulement le certificat technique).",
            f"{gen} card read contactless: that mode has no PIN and no signature (only the "
            "technical certificate).",
            "card_contact",
            **details,
        )
    if ident.generation is CardGeneration.CPS_UNKNOWN_GENERATION:
        return ctx.warning(
            "card.generation_unknown",
            f"Carte CPS reconnue ({ident.name}), génération incertaine.",
            f"CPS card recognised ({ident.name}), generation uncertain.",
            None,
            **details,
        )
    more = f" (+{len(cps) - 1})" if len(cps) > 1 else ""
    return ctx.ok(
        "card.cps",
        f"Carte {gen} ({iface_fr}) dans « {first.name} »{more}.",
        f"{gen} card ({ident.interface.value}) in \u201c{first.name}\u201d{more}.",
        **details,
    )


# --- PKCS#11 ---------------------------------------------------------------------------

_NOT_THERE = ("missing", "missing (dangling symlink)")


def _is_opensc(module: Module) -> bool:
    return "opensc" in (module.manufacturer + " " + module.resolved_path).casefold()


def _middleware_support(ctx: CheckContext, module: Module) -> list[str]:
    """One sentence per CPS generation in the readers: what works with this module."""
    mw = middleware_of(module.manufacturer, module.resolved_path)
    lang = resolve_lang(ctx.lang)
    out: list[str] = []
    for gen in sorted({r.generation for r in ctx.data.get("cps_readers", []) if r.generation},
                      key=lambda g: g.value):  # fmt: skip
        sup = support(gen, mw) if mw is not None else None
        if sup is None or mw is None:
            continue

        def yn(flag: bool) -> str:
            return text("common.yes" if flag else "common.no", lang)

        out.append(text(
            "cps4.works_with", lang, generation=gen.value, middleware=mw.value,
            token=yn(sup.token), auth=yn(sup.authentication), sign=yn(sup.signature),
            decrypt=yn(sup.decryption), tls13=yn(sup.tls13),
        ))  # fmt: skip
    return out


def check_module(ctx: CheckContext) -> Finding:
    opts = _opts(ctx)
    try:
        module = load_module(opts.module)
    except ModuleLoadError as exc:
        attempts = list(exc.attempts)
        present = [(p, why) for p, why in attempts if why not in _NOT_THERE]
        tried: dict[str, Any] = {"attempts": [[p, why] for p, why in attempts],
                   "python_bits": 64 if sys.maxsize > 2**32 else 32}
        if present:
            path, why = present[0]
            return ctx.error(
                "pkcs11.module_unloadable",
                f"Le logiciel de la carte est présent mais ne se charge pas : {path} ({why}).",
                f"The card middleware is there but does not load: {path} ({why}).",
                "module_broken",
                **tried,
            )
        paths = ", ".join(p for p, _w in attempts) or "-"
        return ctx.error(
            "pkcs11.no_module",
            f"Logiciel de la carte CPS introuvable (chemins essayés : {paths}).",
            f"CPS card middleware not found (paths tried: {paths}).",
            "middleware_missing",
            **tried,
        )
    ctx.data["module"] = module
    details: dict[str, Any] = {
        "path": module.resolved_path,
        "source": module.source,
        "manufacturer": module.manufacturer,
        "description": module.description,
        "cryptoki_version": ".".join(map(str, module.cryptoki_version)),
        "library_version": ".".join(map(str, module.library_version)),
    }
    details["middleware"] = module.middleware
    details["middleware_version"] = module.middleware_version
    words = {lang: {"middleware": module.middleware_name(lang), "path": module.resolved_path}
             for lang in ("fr", "en")}  # fmt: skip
    name = f"{module.description or module.manufacturer} ({module.resolved_path})"
    details["support"] = _middleware_support(ctx, module)
    cps4_readers = [
        r for r in ctx.data.get("cps_readers", []) if r.generation is CardGeneration.CPS4
    ]
    if _is_opensc(module) and cps4_readers:
        needed = support(CardGeneration.CPS4, Middleware.ANS)
        version = (needed.minimum_version if needed else None) or "5.2"
        return ctx.error(
            "pkcs11.opensc_cps4",
            text("cps4.opensc_unknown", "fr", module=name, version=version),
            text("cps4.opensc_unknown", "en", module=name, version=version),
            "cps4_needs_ans",
            **details,
        )
    if _is_opensc(module):
        return ctx.warning(
            "pkcs11.opensc",
            text("pkcs11.opensc_cannot_sign", "fr", **words["fr"]),
            text("pkcs11.opensc_cannot_sign", "en", **words["en"]),
            "opensc_cannot_sign",
            **details,
        )
    return ctx.ok("pkcs11.module", text("pkcs11.module_loaded", "fr", **words["fr"]),
                  text("pkcs11.module_loaded", "en", **words["en"]), **details)  # fmt: skip


def _token_details(info: TokenInfo) -> dict[str, Any]:
    return {
        "label": info.label,
        "serial": info.serial,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "slot_id": info.slot_id,
        "slot": info.slot_description,
        "flags": info.flags.names(),
    }


def _usable_token(module: Module, info: TokenInfo) -> Token:
    """The token of *info* (the PKCS#11 layer reopens sessions a re-insertion killed)."""
    return module.open_token(serial=info.serial, slot_id=info.slot_id)


def check_token(ctx: CheckContext) -> Finding:
    opts = _opts(ctx)
    module: Module = ctx.data["module"]
    reports = module.scan_slots(token_present=False)
    broken = [r for r in reports if r.error]
    tokens = [r.token for r in reports if r.token is not None]
    if opts.token:
        tokens = [t for t in tokens if opts.token in (t.label, t.serial)]
    cps = [t for t in tokens if t.is_cps]
    details: dict[str, Any] = {
        "slots": [
            {"slot_id": r.slot_id, "description": r.description,
             "token": r.token.describe() if r.token else None,
             "error": r.error, "code_name": r.code_name}
            for r in reports
        ],
    }
    if not cps:
        unusable = [r for r in broken if (r.code_name or "").startswith("CKR_VENDOR_DEFINED")]
        if unusable:
            return ctx.error(
                "token.unusable",
                f"La carte est reconnue mais inutilisable ({unusable[0].code_name}).",
                f"The card is recognised but unusable ({unusable[0].code_name}).",
                "token_unusable",
                **details,
            )
        if tokens:
            seen = "; ".join(t.describe() for t in tokens)
            return ctx.error(
                "token.not_cps",
                f"Le logiciel voit une carte qui n'est pas une CPS : {seen}.",
                f"The middleware sees a card that is not a CPS: {seen}.",
                "card_unknown",
                **details,
            )
        wanted = f" « {opts.token} »" if opts.token else ""
        return ctx.error(
            "token.absent",
            f"Le logiciel de la carte ne voit aucune carte CPS{wanted} "
            f"({len(reports)} emplacement(s)).",
            f"The card middleware sees no CPS card{wanted.replace('«', '“').replace('»', '”')} "
            f"({len(reports)} slot(s)).",
            "token_missing",
            **details,
        )
    info = cps[0]
    ctx.data["token"] = _usable_token(module, info)
    ctx.data["token_info"] = info
    generation = CpsCard(ctx.data["token"]).generation  # ANS 5.2.2 names a CPS4 "IAS ECC"
    gen = generation.value if generation else "CPS"
    details.update(_token_details(info), generation=gen if gen != "CPS" else None)
    if len(cps) > 1:
        return ctx.warning(
            "token.several",
            f"{len(cps)} cartes CPS présentes ; diagnostic de la première : {info.describe()}.",
            f"{len(cps)} CPS cards present; diagnosing the first one: {info.describe()}.",
            None,
            **details,
        )
    return ctx.ok(
        "token.cps",
        f"Carte {gen} « {info.label} » (n° de série {info.serial}) vue par le logiciel.",
        f"{gen} card \u201c{info.label}\u201d (serial {info.serial}) seen by the middleware.",
        **details,
    )


def check_certificates(ctx: CheckContext) -> Finding:
    card = CpsCard(ctx.data["token"])
    ctx.data["card"] = card
    paired: dict[str, Selected] = {}
    certs: dict[str, CertificateCandidate] = {}
    problems: dict[str, list[str]] = {}
    for usage, criteria in (("auth", CertificateCriteria.for_tls()),
                            ("sign", CertificateCriteria.for_signing())):
        try:
            paired[usage] = card.select(criteria)
            certs[usage] = paired[usage].certificate
        except SelectionError as exc:
            problems[usage] = [f"{name}: {'; '.join(why) or 'fits'}"
                               for name, why in exc.candidates] or [exc.message]
            with contextlib.suppress(SelectionError):
                certs[usage] = card.select_certificate(criteria)
    ctx.data["selected"] = paired
    ctx.data["certs"] = certs
    all_certs = card.certificates()
    ctx.data["ca_certificates"] = [c for c in all_certs if is_ca(c)]
    keys_visible = len(card.token.private_keys())
    details: dict[str, Any] = {
        "certificates": len(all_certs),
        "private_keys_visible": keys_visible,
        "found": {u: c.describe() for u, c in certs.items()},
        "paired": {u: f"{s.certificate.label!r} + {s.key.label!r} (by {s.paired_by})"
                   for u, s in paired.items()},
        "problems": problems,
    }
    if "auth" not in certs:
        return ctx.error(
            "certs.no_auth",
            "Pas de certificat d'authentification sur la carte.",
            "No authentication certificate on the card.",
            "certificates_missing",
            **details,
        )
    if keys_visible == 0 and not paired:
        # Some middlewares show the private keys only after the PIN: pairing cannot be
        # checked without spending a try, so say so instead of calling the card broken.
        return ctx.warning(
            "certs.keys_hidden",
            "Certificats présents ; les clés privées ne sont visibles qu'après le code porteur "
            "(association certificat-clé non vérifiée).",
            "Certificates present; the private keys are only visible after the PIN "
            "(certificate-key pairing not checked).",
            None,
            **details,
        )
    if "auth" not in paired:
        return ctx.error(
            "certs.auth_key_missing",
            "Le certificat d'authentification n'a pas de clé privée associée sur la carte.",
            "The authentication certificate has no matching private key on the card.",
            "certificates_missing",
            **details,
        )
    if "sign" not in paired:
        return ctx.warning(
            "certs.no_sign",
            "Certificat d'authentification présent avec sa clé, mais pas de certificat de "
            "signature utilisable avec sa clé.",
            "Authentication certificate present with its key, but no usable signature "
            "certificate with its key.",
            "certificates_missing",
            **details,
        )
    return ctx.ok(
        "certs.ok",
        "Certificats d'authentification et de signature présents, chacun avec sa clé privée.",
        "Authentication and signature certificates present, each with its private key.",
        **details,
    )


def check_holder(ctx: CheckContext) -> Finding:
    holder: Practitioner = ctx.data["certs"]["auth"].holder
    ctx.data["holder"] = holder
    prof = holder.profession.label if holder.profession else "?"
    ident = holder.ps_id_nat or "?"
    test_fr = " — carte de TEST" if holder.is_test_card else ""
    test_en = " — TEST card" if holder.is_test_card else ""
    rpps_fr = (f" Pour la e-CPS, l'identifiant national est {ident} (RPPS précédé du chiffre 8)."
               if holder.rpps else "")
    rpps_en = (f" For the e-CPS, the national identifier is {ident} (RPPS preceded by 8)."
               if holder.rpps else "")
    details = {k: v for k, v in holder.to_dict().items()
               if k in ("display_name", "ps_id_nat", "rpps", "adeli", "title", "card_number",
                        "is_test_card", "issuer_cn", "problems")}
    details["profession"] = f"{prof} ({holder.profession.code})" if holder.profession else None
    details["card_category"] = holder.card_category.label if holder.card_category else None
    if holder.problems:
        return ctx.warning(
            "holder.incomplete",
            f"{holder.display_name}, {prof}, {ident}{test_fr} ; identité incomplète : "
            + "; ".join(holder.problems),
            f"{holder.display_name}, {prof}, {ident}{test_en}; incomplete identity: "
            + "; ".join(holder.problems),
            "certificates_missing",
            **details,
        )
    return ctx.ok(
        "holder.ok",
        f"{holder.display_name}, {prof}, identifiant {ident}{test_fr}.{rpps_fr}",
        f"{holder.display_name}, {prof}, identifier {ident}{test_en}.{rpps_en}",
        **details,
    )


def _fmt_date(d: _dt.datetime) -> str:
    return d.strftime("%Y-%m-%d")


def check_validity(ctx: CheckContext) -> Finding:
    opts = _opts(ctx)
    now = opts.now()
    rows = []
    for usage, cand in ctx.data["certs"].items():
        h: Practitioner = cand.holder
        rows.append((usage, cand.label, h.not_before, h.not_after))
    details = {"at": now.isoformat(timespec="seconds"),
               "certificates": [{"usage": u, "label": lb, "not_before": nb.isoformat(),
                                 "not_after": na.isoformat()} for u, lb, nb, na in rows]}
    expired = [r for r in rows if now > r[3]]
    future = [r for r in rows if now < r[2]]
    if expired:
        when = _fmt_date(min(r[3] for r in expired))
        return ctx.error(
            "validity.expired",
            f"Carte expirée : certificat(s) valable(s) jusqu'au {when}.",
            f"Card expired: certificate(s) valid until {when}.",
            "card_expired",
            **details,
        )
    if future:
        when = _fmt_date(max(r[2] for r in future))
        return ctx.error(
            "validity.not_yet_valid",
            f"Certificat pas encore valide (à partir du {when}) d'après l'horloge de ce poste.",
            f"Certificate not valid yet (from {when}) according to this computer's clock.",
            "clock",
            **details,
        )
    end = min(r[3] for r in rows)
    days = (end - now).days
    if days <= opts.expiry_warning_days:
        return ctx.warning(
            "validity.expiring",
            f"La carte expire dans {days} jour(s), le {_fmt_date(end)}.",
            f"The card expires in {days} day(s), on {_fmt_date(end)}.",
            "card_expiring",
            **details,
        )
    return ctx.ok(
        "validity.ok",
        f"Certificats valides jusqu'au {_fmt_date(end)}.",
        f"Certificates valid until {_fmt_date(end)}.",
        **details,
    )


def _trust_store(ctx: CheckContext, holder: Practitioner) -> tuple[TrustStore | None, str]:
    """The trust store for this card, and the name of the hierarchy ("" when none applies)."""
    opts = _opts(ctx)
    extra = [c for f in opts.trust_files for c in load_certificates(f)]
    want_test = opts.trust == "test" or (opts.trust == "auto" and holder.is_test_card)
    if want_test:
        if extra:
            return igc_sante_test(extra), "IGC-Santé TEST"
        if os.environ.get("CPS_IGC_SANTE_TEST_DIR"):
            return igc_sante_test(), "IGC-Santé TEST"
        return None, "IGC-Santé TEST"
    store = igc_sante()
    if extra:
        store = store + TrustStore.from_certificates(extra, name="given")
    return store, "IGC-Santé"


def _validator(ctx: CheckContext, store: TrustStore, crls: list[bytes] | None) -> Validator:
    opts = _opts(ctx)
    builder = ValidatorBuilder().trust(store).time(opts.now())
    if ctx.data.get("ca_certificates"):  # CA certificates the card carries may complete paths
        builder = builder.intermediates(ctx.data["ca_certificates"])
    builder = (
        builder.revocation("off") if crls is None else builder.crls(crls).revocation("hard")
    )
    validator = builder.workers(1).build()
    ctx.resources.callback(validator.close)
    return validator


def _path_names(result: ValidationResult) -> list[str]:
    out = []
    for c in result.path:
        cns = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        out.append(str(cns[0].value) if cns else c.subject.rfc4514_string())
    return out


_CHAIN_REMEDIES = {
    VStatus.EXPIRED: "card_expired",
    VStatus.NOT_YET_VALID: "clock",
    VStatus.REVOKED: "revoked",
}


def check_chain(ctx: CheckContext) -> Finding:
    holder: Practitioner = ctx.data["holder"]
    store, name = _trust_store(ctx, holder)
    if store is None:
        return ctx.warning(
            "chain.no_test_store",
            "Carte de TEST : les autorités de l'IGC-Santé TEST ne sont pas fournies, la chaîne "
            "n'est pas vérifiée (--trust-file, ou CPS_IGC_SANTE_TEST_DIR).",
            "TEST card: the IGC-Santé TEST authorities are not given, the chain is not checked "
            "(--trust-file, or CPS_IGC_SANTE_TEST_DIR).",
            None,
            hierarchy=name,
        )
    ctx.data["trust_store"] = store
    validator = _validator(ctx, store, None)
    verdicts = {}
    for usage, cand in ctx.data["certs"].items():
        verdicts[usage] = validator.validate(cand.certificate)
    details = {
        "hierarchy": name,
        "anchors": len(store.anchors),
        "results": {u: {"status": r.status.name, "reason": r.reason, "path": _path_names(r)}
                    for u, r in verdicts.items()},
    }
    bad = {u: r for u, r in verdicts.items() if not r.ok}
    if bad:
        usage, r = next(iter(bad.items()))
        return ctx.error(
            "chain." + r.status.name.lower(),
            f"Le certificat ({usage}) ne remonte pas à l'{name} : {r.reason}.",
            f"The certificate ({usage}) does not chain to {name}: {r.reason}.",
            _CHAIN_REMEDIES.get(r.status, "untrusted_chain"),
            **details,
        )
    path = " → ".join(_path_names(verdicts["auth"])) or name
    return ctx.ok(
        "chain.ok",
        f"Certificats émis par l'{name} ({path}).",
        f"Certificates issued by {name} ({path}).",
        **details,
    )


def _crls(ctx: CheckContext) -> tuple[list[bytes], list[str]]:
    opts = _opts(ctx)
    crls: list[bytes] = []
    sources: list[str] = []
    for f in opts.crl_files:
        crls.extend(load_crls(f))
        sources.append(f)
    crl_dir = opts.crl_dir or (str(DEFAULT_CRL_DIR) if DEFAULT_CRL_DIR.is_dir() else None)
    if crl_dir and os.path.isdir(crl_dir):
        found = load_crls(crl_dir)
        if found:
            crls.extend(found)
            sources.append(crl_dir)
    return crls, sources


def check_revocation(ctx: CheckContext) -> Finding:
    if "trust_store" not in ctx.data:
        return ctx.skipped(
            "revocation.no_chain",
            "Non vérifié : la chaîne de confiance n'a pas pu être vérifiée.",
            "Not checked: the chain could not be checked.",
        )
    crls, sources = _crls(ctx)
    if not crls:
        return ctx.warning(
            "revocation.no_crl",
            "Révocation inconnue : aucune liste de révocation (CRL) disponible hors ligne.",
            "Revocation unknown: no revocation list (CRL) available offline.",
            "revocation_unknown",
            crl_sources=sources,
        )
    validator = _validator(ctx, ctx.data["trust_store"], crls)
    verdicts = {u: validator.validate(cand.certificate)
                for u, cand in ctx.data["certs"].items()}
    details: dict[str, Any] = {
        "crl_sources": sources,
        "crls": len(crls),
        "results": {u: {"status": r.status.name, "reason": r.reason} for u, r in verdicts.items()},
    }
    revoked = {u: r for u, r in verdicts.items() if r.status is VStatus.REVOKED}
    if revoked:
        usage, r = next(iter(revoked.items()))
        when = _fmt_date(r.revocation.date) if r.revocation else "?"
        why = r.revocation.reason if r.revocation else "?"
        details.update(revoked_on=when, revocation_reason=why)
        return ctx.error(
            "revocation.revoked",
            f"Certificat ({usage}) révoqué le {when} (motif : {why}).",
            f"Certificate ({usage}) revoked on {when} (reason: {why}).",
            "revoked",
            **details,
        )
    unknown = {u: r for u, r in verdicts.items() if r.status is not VStatus.VALID}
    if unknown:
        usage, r = next(iter(unknown.items()))
        return ctx.warning(
            "revocation.unknown",
            f"Révocation non vérifiée pour le certificat ({usage}) : {r.reason}.",
            f"Revocation not checked for the certificate ({usage}): {r.reason}.",
            "revocation_unknown",
            **details,
        )
    return ctx.ok(
        "revocation.ok",
        f"Non révoqué d'après {len(crls)} liste(s) de révocation.",
        f"Not revoked according to {len(crls)} revocation list(s).",
        **details,
    )


def check_pin(ctx: CheckContext) -> Finding:
    token: Token = ctx.data["token"]
    info = token.info  # one C_GetTokenInfo: the flags, no login, no try spent
    status = info.pin_status
    left = info.pin_tries_left
    details = {"pin_status": status.value, "tries_left": left,
               "puk_tries_left": info.puk_tries_left, "flags": info.flags.names()}
    if info.flags.so_pin_locked and status is PinStatus.LOCKED:
        return ctx.error(
            "pin.puk_locked",
            "Code porteur et code de déblocage bloqués : la carte doit être remplacée.",
            "PIN and unblocking code both blocked: the card must be replaced.",
            "pin_locked",
            **details,
        )
    if status is PinStatus.LOCKED:
        return ctx.error(
            "pin.locked",
            "Le code porteur est bloqué (3 codes faux).",
            "The PIN is blocked (3 wrong PINs).",
            "pin_locked",
            **details,
        )
    if status is PinStatus.FINAL_TRY:
        return ctx.warning(
            "pin.final_try",
            "Dernier essai : un code porteur faux bloquera la carte.",
            "Last try: a wrong PIN will block the card.",
            "pin_final_try",
            **details,
        )
    if status is PinStatus.COUNT_LOW:
        n_fr = f"il reste {left} essais" if left else "des essais ont été consommés"
        n_en = f"{left} tries left" if left else "tries were spent"
        return ctx.warning(
            "pin.count_low",
            f"Un code porteur faux a déjà été saisi ({n_fr}).",
            f"A wrong PIN was already typed ({n_en}).",
            "pin_count_low",
            **details,
        )
    if status is PinStatus.PIN_PAD:
        return ctx.ok("pin.pin_pad",
                      "Lecteur à clavier : le code se tape sur le lecteur.",
                      "PIN pad reader: the PIN is typed on the reader.", **details)
    n = f" ({left})" if left else ""
    return ctx.ok("pin.ok", f"Code porteur non bloqué, tous les essais disponibles{n}.",
                  f"PIN not blocked, every try available{n}.", **details)


# --- Test SSL ------------------------------------------------------------------------------

_TLS_REMEDIES: dict[Failure, str] = {
    Failure.CLIENT_CERT_REJECTED: "tls_rejected",
    Failure.SERVER_UNTRUSTED: "tls_server_untrusted",
    Failure.NETWORK: "tls_network",
    Failure.TLS: "tls_network",
    Failure.PIN_NEEDED: "pin_needed",
    Failure.MECHANISM_REFUSED: "tls_card",
    Failure.SIGNATURE_FAILED: "tls_card",
    Failure.CARD_REMOVED: "card_insert",
}
_TLS_FR: dict[Failure, str] = {
    Failure.NO_CLIENT_CERT_REQUESTED: "le serveur n'a pas demandé de certificat client",
    Failure.CLIENT_CERT_REJECTED: "le serveur a refusé le certificat de la carte",
    Failure.MECHANISM_REFUSED: "la carte a refusé le mécanisme de signature demandé",
    Failure.PIN_NEEDED: "la carte demande le code porteur avant de signer",
    Failure.CARD_REMOVED: "la carte a été retirée pendant la connexion",
    Failure.SIGNATURE_FAILED: "la carte n'a pas pu signer",
    Failure.SERVER_UNTRUSTED: "le certificat du serveur n'est pas reconnu",
    Failure.NETWORK: "le serveur est injoignable",
    Failure.TLS: "la connexion sécurisée a échoué",
}


def _login_for_tls(ctx: CheckContext, card: CpsCard) -> Finding | None:
    """Log in for the Test SSL if needed; a Finding when that cannot be done."""
    opts = _opts(ctx)
    if card.is_logged_in:
        return None
    pad = card.pin_status is PinStatus.PIN_PAD
    if opts.pin is None and not pad:
        return ctx.skipped(
            "tls.pin_needed",
            "Test SSL non fait : il faut le code porteur (cps diag --url … --ask-pin).",
            "Test SSL not run: it needs the PIN (cps diag --url … --ask-pin).",
        )
    try:
        card.login(None if pad else opts.pin)  # never the final try: FinalTryRefused
    except FinalTryRefused:
        return ctx.warning(
            "tls.final_try", "Test SSL non fait : il ne reste qu'un essai du code porteur.",
            "Test SSL not run: only one PIN try is left.", "pin_final_try")
    except PinLocked:
        return ctx.error("tls.pin_locked", "Le code porteur est bloqué.",
                         "The PIN is blocked.", "pin_locked")
    except PinIncorrect as exc:
        left = exc.tries_left
        return ctx.error(
            "tls.pin_incorrect",
            f"Code porteur faux (essais restants : {left if left is not None else '?'}).",
            f"Wrong PIN (tries left: {left if left is not None else '?'}).",
            "pin_final_try" if left == 1 else "pin_count_low",
            tries_left=left,
        )
    ctx.resources.callback(card.logout)  # leave the card as we found it
    return None


def check_test_ssl(ctx: CheckContext) -> Finding:
    opts = _opts(ctx)
    if not opts.url:
        return ctx.skipped(
            "tls.not_requested",
            "Pas d'adresse donnée pour le Test SSL (--url).",
            "No address given for the Test SSL (--url).",
        )
    card: CpsCard = ctx.data["card"]
    refused = _login_for_tls(ctx, card)
    if refused is not None:
        return refused
    res = test_ssl(opts.url, card, cafile=opts.ca_file, timeout=opts.tls_timeout)
    details: dict[str, Any] = {
        "url": res.url,
        "protocol": res.protocol,
        "cipher": res.cipher,
        "client_signature": res.client_signature,
        "client_certificate_sent": res.client_certificate_sent,
        "server_verified": res.server_verified,
        "server_chain": [c.to_dict() for c in res.server_chain],
        "server_chain_source": res.server_chain_source,
        "http_status": res.http_status,
        "timings_ms": {k: round(v, 1) for k, v in res.timings_ms.items()},
        "detail": res.detail,
        "explanation": res.reason,
    }
    if res.ok:
        return ctx.ok(
            "tls.ok",
            f"Connexion sécurisée avec la carte acceptée par {opts.url} ({res.protocol}, "
            f"HTTP {res.http_status}).",
            f"Secure connection with the card accepted by {opts.url} ({res.protocol}, "
            f"HTTP {res.http_status}).",
            **details,
        )
    failure = res.failure or Failure.TLS
    if failure is Failure.NO_CLIENT_CERT_REQUESTED:
        return ctx.warning(
            "tls.no_client_cert_requested",
            f"{opts.url} n'a pas demandé la carte : ce n'est pas une adresse de Test SSL.",
            f"{opts.url} did not ask for the card: not a Test SSL address.",
            None,
            **details,
        )
    return ctx.error(
        "tls." + failure.name.lower(),
        f"Test SSL échoué : {_TLS_FR.get(failure, failure.value)}.",
        f"Test SSL failed: {failure.value}.",
        _TLS_REMEDIES.get(failure, "tls_network"),
        **details,
    )


# --- a software test card uses no reader -----------------------------------------------


def _software_module(ctx: CheckContext) -> str | None:
    """The module's name when it is a software token (SoftHSM, the CPS test token), which
    reads no card reader; ``None`` for a real card's middleware or no module."""
    try:
        module = load_module(_opts(ctx).module)
    except CpsError:
        return None
    name = f"{module.description} {module.manufacturer}"
    return (module.description or module.manufacturer) if "softhsm" in name.casefold() else None


def _unless_software_card(function: CheckFunction) -> CheckFunction:
    """A PC/SC check whose failure does not matter for a software test card: skipped
    ("not needed") instead of an error, so that a diagnostic of a working SoftHSM card
    does not conclude that a problem prevents using it."""

    def check(ctx: CheckContext) -> Finding:
        try:
            finding = function(ctx)
        except CpsError:
            finding = None
        if finding is None or finding.status is Status.ERROR:
            soft = _software_module(ctx)
            if soft is not None:
                return ctx.skipped(
                    "pcsc.not_used",
                    text("diag.not_pcsc_card", "fr", module=soft),
                    text("diag.not_pcsc_card", "en", module=soft),
                    **(dict(finding.details) if finding else {}),
                )
            if finding is None:
                raise
        return finding

    check.__name__ = function.__name__
    check.__doc__ = function.__doc__
    return check


# --- the list ---------------------------------------------------------------------------

DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("pcsc.service", "Service des cartes à puce (PC/SC)", "Smart card service (PC/SC)",
          _unless_software_card(check_pcsc_service), timeout=10),
    Check("pcsc.readers", "Lecteurs de cartes", "Card readers",
          _unless_software_card(check_readers),
          depends=("pcsc.service",), timeout=10),
    Check("pcsc.card", "Carte dans le lecteur", "Card in the reader",
          _unless_software_card(check_card_present),
          depends=("pcsc.readers",), timeout=10),
    Check("card.atr", "Carte CPS reconnue", "CPS card recognised",
          _unless_software_card(check_atr),
          depends=("pcsc.card",), timeout=10),
    Check("pkcs11.module", "Logiciel de la carte (module PKCS#11)",
          "Card middleware (PKCS#11 module)", check_module, timeout=20),
    Check("pkcs11.token", "Carte vue par le logiciel", "Card seen by the middleware",
          check_token, depends=("pkcs11.module",), timeout=20),
    Check("card.certificates", "Certificats et clés de la carte", "Card certificates and keys",
          check_certificates, depends=("pkcs11.token",), timeout=20),
    Check("card.holder", "Titulaire de la carte", "Card holder", check_holder,
          depends=("card.certificates",), timeout=10),
    Check("cert.validity", "Dates de validité", "Validity dates", check_validity,
          depends=("card.certificates",), timeout=10),
    Check("cert.chain", "Chaîne de confiance IGC-Santé", "Chain to IGC-Santé", check_chain,
          depends=("card.holder",), timeout=20),
    Check("cert.revocation", "Révocation", "Revocation", check_revocation,
          depends=("cert.chain",), timeout=20),
    Check("pin.status", "Code porteur", "PIN (code porteur)", check_pin,
          depends=("pkcs11.token",), timeout=15),
    Check("tls.test_ssl", "Test SSL (connexion avec la carte)",
          "Test SSL (connection with the card)", check_test_ssl,
          depends=("card.certificates", "pin.status"), timeout=45),
    *BROWSER_CHECKS,
)


def check_ids() -> tuple[str, ...]:
    """The ids of the default checks, in the order they run."""
    return tuple(c.id for c in DEFAULT_CHECKS)
