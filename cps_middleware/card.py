"""The CPS card facade: one object for what a health application does with a card.

::

    with open_card() as card:                   # exactly one CPS token, else an error
        print(card.reader, card.generation, card.holder)
        print(card.pin_status)                  # read from the token flags, no PIN try
        card.login(Pin("1234"))
        cert = card.certificate("auth")         # cryptography x509.Certificate
        key = card.private_key("sign")          # cryptography RSAPrivateKey / EC key on the card

Certificates and keys are chosen by :mod:`cps_middleware.selection`: the
authentication certificate for TLS and login, the signature certificate for
documents; when none or several fit, the error lists every candidate and why.
The holder identity (:class:`~cps_middleware.cards.identity.Practitioner`) is
read from the authentication certificate (the signature one when there is
none) and needs no PIN.
"""

from __future__ import annotations

import threading
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from cps_middleware.cards.identity import CertificateUsage, Practitioner
from cps_middleware.errors import (
    CpsError,
    InvalidInput,
    NoMatchingCertificate,
    NoSuchToken,
    NotLoggedIn,
)
from cps_middleware.pkcs11 import KeyRef, Mechanism, Pin, PinStatus, Token, open_token
from cps_middleware.pkcs11.keys import TokenPrivateKey, card_private_key
from cps_middleware.selection import (
    CertificateCandidate,
    CertificateCriteria,
    KeyCandidate,
    KeyType,
    Selected,
    select,
    select_certificate,
)

__all__ = ["CpsCard", "open_card"]


class CpsCard:
    """A CPS card (a PKCS#11 token) with its holder, certificates and keys.

    Made by :func:`open_card`, or from a :class:`~cps_middleware.pkcs11.Token`
    already opened. Closing it (or leaving the ``with`` block) closes the
    token's sessions, which logs the holder out.
    """

    def __init__(self, token: Token) -> None:
        if not isinstance(token, Token):
            raise InvalidInput("CpsCard needs a cps_middleware.pkcs11.Token")
        self._token = token
        self._lock = threading.Lock()
        self._certs: list[CertificateCandidate] | None = None
        self._keys: list[KeyCandidate] | None = None
        self._holder: Practitioner | None = None

    # -- what the card is ----------------------------------------------------------

    @property
    def token(self) -> Token:
        return self._token

    @property
    def reader(self) -> str:
        """The reader (slot) the card is in, as the middleware names it."""
        info = self._token.info
        return info.slot_description or f"slot {info.slot_id}"

    @property
    def generation(self) -> str | None:
        """``"CPS3"`` or ``"CPS4"`` when the token tells, else None.

        From the token model, except that the ANS module 5.2.2 reports the model
        "IAS ECC" for a CPS4 too (its CPS4 driver never records the card type):
        a card whose token offers RSA-PSS is a CPS4 (a CPS3 has no PSS).
        """
        generation = self._token.info.generation
        if generation == "CPS3" and self._offers_pss():
            return "CPS4"
        return generation

    def _offers_pss(self) -> bool:
        try:
            return int(Mechanism.RSA_PKCS_PSS) in self._token.mechanisms()
        except CpsError:
            return False

    @property
    def label(self) -> str:
        return self._token.label

    @property
    def serial(self) -> str:
        return self._token.serial

    @property
    def holder(self) -> Practitioner:
        """Who holds the card, from its authentication (else signature) certificate."""
        if self._holder is None:
            for usage in (CertificateUsage.AUTHENTICATION, CertificateUsage.SIGNATURE):
                try:
                    chosen = self.select_certificate(CertificateCriteria(usage=usage))
                except NoMatchingCertificate:
                    continue
                self._holder = chosen.holder
                break
            else:
                raise NoMatchingCertificate(
                    f"card {self.label!r} holds no holder certificate",
                    candidates=[
                        (c.describe(), ["not a holder certificate"]) for c in self._load()[0]
                    ],
                )
        return self._holder

    # -- PIN -----------------------------------------------------------------------------

    @property
    def pin_status(self) -> PinStatus:
        """The holder-PIN state from the token flags (no PIN try is spent)."""
        return self._token.pin_status

    @property
    def pin_tries_left(self) -> int | None:
        return self._token.pin_tries_left

    @property
    def is_logged_in(self) -> bool:
        return self._token.is_logged_in

    def login(self, pin: Pin | None = None, *, allow_final_try: bool = False) -> None:
        """Log the holder in (``pin`` None on a PIN-pad reader). Never retries.

        Raises PinIncorrect (with ``tries_left``), PinLocked, or FinalTryRefused
        when one try is left and ``allow_final_try`` is not set.
        """
        self._token.login(pin, allow_final_try=allow_final_try)
        with self._lock:
            self._keys = None  # keys hidden before login are visible now

    def logout(self) -> None:
        self._token.logout()

    # -- certificates and keys -------------------------------------------------------------

    def _load(self) -> tuple[list[CertificateCandidate], list[KeyCandidate]]:
        with self._lock:
            if self._certs is None:
                self._certs = [
                    CertificateCandidate(c.certificate, c.label, c.id, handle=c)
                    for c in self._token.certificates()
                ]
            certs = self._certs
            if self._keys is None:
                if self._token.login_lost:
                    # Listing private keys would spend the one CardRemoved meant for
                    # the caller's next signature; the keys are hidden until login anyway.
                    return certs, []
                keys = [_key_candidate(k) for k in self._token.private_keys()]
                # Many tokens hide private keys until login: keep looking until then.
                if keys or self._token.is_logged_in:
                    self._keys = keys
                return certs, keys
            return certs, self._keys

    def refresh(self) -> None:
        """Forget what was read from the card (after it was swapped or re-inserted)."""
        with self._lock:
            self._certs = None
            self._keys = None
            self._holder = None

    def certificates(self) -> list[x509.Certificate]:
        """Every certificate on the card (holder and CA certificates)."""
        return [c.certificate for c in self._load()[0]]

    def select(self, criteria: CertificateCriteria | None = None) -> Selected:
        """Exactly one certificate fitting ``criteria`` (default: authentication) + its key.

        Raises NoMatchingCertificate / AmbiguousSelection listing every candidate
        and why it was rejected.
        """
        certs, keys = self._load()
        try:
            return select(certs, keys, criteria or CertificateCriteria.for_tls())
        except NoMatchingCertificate as exc:
            if keys or self._token.is_logged_in:
                raise
            exc.hint = "this card shows its private keys only after login: log in first"
            raise

    def select_certificate(
        self, criteria: CertificateCriteria | None = None
    ) -> CertificateCandidate:
        """Like :meth:`select` without the key (showing a certificate, the identity)."""
        return select_certificate(self._load()[0], criteria or CertificateCriteria.for_tls())

    def certificate(
        self,
        usage: CertificateUsage | str = "auth",
        *,
        criteria: CertificateCriteria | None = None,
    ) -> x509.Certificate:
        """The ``"auth"`` or ``"sign"`` certificate (or the one ``criteria`` selects)."""
        wanted = criteria or CertificateCriteria.for_usage(usage)
        return self.select_certificate(wanted).certificate

    def private_key(
        self,
        usage: CertificateUsage | str = "sign",
        *,
        criteria: CertificateCriteria | None = None,
    ) -> TokenPrivateKey:
        """The card key for ``"sign"`` (default) or ``"auth"``, as a ``cryptography`` key.

        Its signatures need the holder logged in (:meth:`login`).
        """
        wanted = criteria or CertificateCriteria.for_usage(usage)
        certs, keys = self._load()
        if keys or self._token.is_logged_in:
            chosen = self.select(wanted)
            return card_private_key(self._token, _key_ref(chosen), chosen.certificate.certificate)
        # The token hides its private keys until login: choose the certificate now
        # and pair its key at the first signature.
        cert = select_certificate(certs, wanted)

        def resolve() -> KeyRef:
            if not self._token.is_logged_in:
                raise NotLoggedIn(
                    f"card {self.label!r} is not logged in: log in with the holder PIN "
                    "before signing",
                    function="C_Sign",
                    module=self._token.module.resolved_path,
                )
            chosen = self.select(wanted)
            if chosen.certificate.certificate != cert.certificate:
                raise NoMatchingCertificate(
                    "the card changed since the key was chosen: open it again",
                )
            return _key_ref(chosen)

        return card_private_key(
            self._token, resolve, cert.certificate, name=f"key of {cert.label or 'certificate'}"
        )

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the token's sessions (the holder is logged out)."""
        self._token.close()

    def __enter__(self) -> CpsCard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CpsCard {self.label!r} serial {self.serial!r}>"


def _key_ref(chosen: Selected) -> KeyRef:
    ref = chosen.key.handle
    if not isinstance(ref, KeyRef):  # pragma: no cover - candidates come from the token
        raise InvalidInput("the selected key does not come from this card")
    return ref


def _key_candidate(key: KeyRef) -> KeyCandidate:
    key_type: KeyType | None = {"RSA": "RSA", "EC": "EC"}.get(key.key_type)  # type: ignore[assignment]
    public = None
    if key_type == "RSA" and key.modulus and key.public_exponent:
        try:
            public = rsa.RSAPublicNumbers(key.public_exponent, key.modulus).public_key()
        except ValueError:
            public = None  # a token showing odd numbers: pair by id/label only
    return KeyCandidate(
        label=key.label,
        id=key.id,
        key_type=key_type,
        can_sign=key.can_sign,
        public_key=public,
        handle=key,
    )


def open_card(
    module: str | None = None,
    *,
    serial: str | None = None,
    label: str | None = None,
    slot_id: int | None = None,
) -> CpsCard:
    """The one CPS card present (choose by ``serial``, ``label`` or ``slot_id``).

    ``module`` is the PKCS#11 module path (default: ``$CPS_PKCS11_MODULE``, the
    ANS middleware, then OpenSC). Raises NoSuchToken / MultipleTokens naming
    the tokens seen, ModuleLoadError listing the module paths tried.
    """
    try:
        token = open_token(module, serial=serial, label=label, slot_id=slot_id, cps_only=True)
    except NoSuchToken as exc:
        hint = _cps4_hint(exc.module or "")
        if hint is not None:
            exc.hint = hint
        raise
    return CpsCard(token)


def _cps4_hint(module_path: str) -> str | None:
    """When the middleware is OpenSC and a reader holds a CPS4: say that it needs ANS's."""
    from cps_middleware.cards.atr import CardGeneration
    from cps_middleware.cards.support import Middleware, middleware_of, support
    from cps_middleware.messages import text

    if middleware_of("", module_path) is not Middleware.OPENSC:
        return None
    try:
        from cps_middleware.pcsc.readers import list_readers

        readers = list_readers(allow_empty=True)
    except (CpsError, ImportError):
        return None
    if not any(r.card_present and r.generation is CardGeneration.CPS4 for r in readers):
        return None
    needed = support(CardGeneration.CPS4, Middleware.ANS)
    version = (needed.minimum_version if needed else None) or "5.2"
    return text("cps4.opensc_unknown", None, module=module_path, version=version)
