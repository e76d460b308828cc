"""The one exception tree of cps-middleware.

Every error carries what a person needs to act on it:

* ``function`` — the call that failed (``C_Login``, ``SCardConnect``, ``VERIFY``);
* ``code`` and ``code_name`` — the low-level code and its name
  (``0xA0`` / ``CKR_PIN_INCORRECT``, ``0x8010001D`` / ``SCARD_E_NO_SERVICE``,
  ``0x63C2`` / ``SW_63C2``);
* ``module`` — the PKCS#11 module path (or PC/SC reader) involved;
* ``hint`` — what to do, in plain words.

Low-level exceptions are kept as ``__cause__``. Layers raise the most specific
class below; callers catch :class:`CpsError` or a family
(:class:`PinError`, :class:`Pkcs11Error`, :class:`PcscError` ...).

Classes may be added here by any layer; keep the tree shallow and each class's
default hint useful.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "AmbiguousSelection",
    "BridgeUnavailable",
    "BrowserRunning",
    "BrowserSetupError",
    "CardCommandError",
    "CardInUse",
    "CardRemoved",
    "CpsError",
    "FinalTryRefused",
    "InvalidInput",
    "MechanismUnsupported",
    "ModuleLoadError",
    "MultipleObjects",
    "MultipleTokens",
    "NoCardPresent",
    "NoMatchingCertificate",
    "NoReaders",
    "NoSuchObject",
    "NoSuchToken",
    "NotLoggedIn",
    "NssToolsMissing",
    "PcscError",
    "PcscServiceUnavailable",
    "PinEntryCancelled",
    "PinError",
    "PinFormatError",
    "PinIncorrect",
    "PinLocked",
    "Pkcs11Error",
    "PrivateKeyExportRefused",
    "PukIncorrect",
    "PukLocked",
    "RevocationDataRejected",
    "RevocationFetchError",
    "RevocationSourceError",
    "SelectionError",
    "SessionLost",
    "SignatureFailed",
    "TestCardError",
    "TlsError",
    "TokenUnusable",
    "UnblockNotSupported",
    "ValidationSetupError",
]
# Pro Santé Connect / OAuth (issue 17); also OAUTH_ERRORS and oauth_error(), not classes
__all__ += [
    "CibaCancelled",
    "OAuthAccessDenied",
    "OAuthAuthorizationPending",
    "OAuthError",
    "OAuthExpiredToken",
    "OAuthInsufficientScope",
    "OAuthInteractionRequired",
    "OAuthInvalidBindingMessage",
    "OAuthInvalidClient",
    "OAuthInvalidGrant",
    "OAuthInvalidRequest",
    "OAuthInvalidScope",
    "OAuthInvalidTarget",
    "OAuthInvalidToken",
    "OAuthInvalidUserCode",
    "OAuthServerError",
    "OAuthSlowDown",
    "OAuthUnauthorizedClient",
    "OAuthUnknownUserId",
    "OAuthUnsupportedGrantType",
    "ProviderResponseInvalid",
    "ProviderUnreachable",
    "PscError",
    "TokenRejected",
]


class CpsError(Exception):
    """Root of every error raised by cps-middleware."""

    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        function: str | None = None,
        code: int | None = None,
        code_name: str | None = None,
        module: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.function = function
        self.code = code
        self.code_name = code_name
        self.module = module
        self.hint = hint if hint is not None else (self.default_hint or None)

    def __str__(self) -> str:
        parts: list[str] = []
        head = ": ".join(p for p in (self.function, self._code_text()) if p)
        if head:
            parts.append(head + ": ")
        parts.append(self.message)
        if self.module:
            parts.append(f" [{self.module}]")
        if self.hint:
            parts.append(f" — {self.hint}")
        return "".join(parts)

    def _code_text(self) -> str:
        if self.code_name and self.code is not None:
            return f"{self.code_name} (0x{self.code:X})"
        if self.code_name:
            return self.code_name
        if self.code is not None:
            return f"0x{self.code:X}"
        return ""

    def __reduce__(self) -> tuple[object, ...]:  # keep errors picklable across processes
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[CpsError], message: str, state: dict[str, object]) -> CpsError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


# --- bad input -------------------------------------------------------------


class InvalidInput(CpsError, ValueError):
    """An argument given to the library is not acceptable; nothing was done."""

    default_hint = "check the value passed to the library"


class PinFormatError(InvalidInput):
    """A PIN or PUK does not have the CPS format; the card was not touched."""

    default_hint = "a CPS holder PIN is 4 to 8 digits; the unblocking code (PUK) is 8 digits"


class TestCardError(InvalidInput):
    """A CPS test card (SoftHSM or virtual) cannot be made as asked."""

    __test__ = False  # not a pytest test class
    default_hint = "check the arguments given to the test card"


class ValidationSetupError(InvalidInput):
    """A chain validator was configured inconsistently (builder misuse, bad CRL file)."""

    default_hint = "check the trust anchors, CRLs and options given to the ValidatorBuilder"


# --- PC/SC -------------------------------------------------------------------


class PcscError(CpsError):
    """A PC/SC (pcscd / WinSCard) call failed."""

    default_hint = "check the card reader and the PC/SC service"


class PcscServiceUnavailable(PcscError):
    """The PC/SC service (pcscd, 'Smart Card') does not answer."""
    default_hint = "the PC/SC service is not running: start pcscd (or the 'Smart Card' service)"


class NoReaders(PcscError):
    """No PC/SC reader is connected."""
    default_hint = "no card reader is connected: plug the reader in, or install its driver"


class NoCardPresent(PcscError):
    """No card in the reader."""
    default_hint = "insert the CPS card in the reader, chip first and facing up"


class CardInUse(PcscError):
    """Another program holds the card exclusively (SCARD_E_SHARING_VIOLATION)."""

    default_hint = "another program holds the card exclusively: close it, or wait and retry"


class CardCommandError(PcscError):
    """The card answered an APDU with an error status word (``code`` = SW1SW2)."""

    default_hint = "the card refused the command"


class CardRemoved(CpsError):
    """The card was pulled (or reset) during the operation; handles are gone.

    Raised by both the PC/SC and the PKCS#11 layers. Re-insert the card, open it
    again and log in again (the PIN must be asked again).
    """

    default_hint = "the card was removed: put it back, then open it and log in again"


# --- PKCS#11 -------------------------------------------------------------------


class SessionLost(CardRemoved):
    """The card's sessions and the holder's login were lost while the card stayed in
    the reader: a card reset, or another process (a forked child) that used the
    card through the same module. Raised once; the next :meth:`login` recovers."""

    default_hint = (
        "log in again with the holder PIN (it is never kept, so the library cannot do it "
        "by itself); in a forked child, open the card in the child"
    )


class Pkcs11Error(CpsError):
    """A PKCS#11 call failed."""

    default_hint = "the CPS middleware (PKCS#11 module) reported an error"


class ModuleLoadError(Pkcs11Error):
    """No PKCS#11 module could be loaded; ``attempts`` lists every path tried and why."""

    default_hint = (
        "install the CPS middleware (Cryptolib CPS from ANS), or OpenSC, "
        "or set CPS_PKCS11_MODULE to the module's path"
    )

    def __init__(
        self, message: str, *, attempts: Sequence[tuple[str, str]] = (), **kw: object
    ) -> None:
        if attempts:
            message += "; tried: " + "; ".join(f"{p} ({why})" for p, why in attempts)
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.attempts = tuple(attempts)


class NoSuchToken(Pkcs11Error):
    """No card (token) matches: none inserted, or not the one asked for."""
    default_hint = "insert the CPS card, or check that the middleware sees the reader"


class MultipleTokens(Pkcs11Error):
    """Several cards (tokens) match where one was expected."""
    default_hint = "several cards are present: choose one by reader, serial or label"


class NoSuchObject(Pkcs11Error):
    """The card does not hold the object asked for."""
    default_hint = "the card does not hold this object"


class MultipleObjects(Pkcs11Error):
    """Several objects on the card match where one was expected."""
    default_hint = "several objects match: narrow the search (label, CKA_ID, class)"


class MechanismUnsupported(Pkcs11Error):
    """The token cannot do the requested mechanism; ``available`` lists what it can do."""

    default_hint = "this card cannot do this operation (a CPS3 has no RSA-PSS)"

    def __init__(self, message: str, *, available: Sequence[str] = (), **kw: object) -> None:
        if available:
            message += "; the card offers: " + ", ".join(available)
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.available = tuple(available)


class NotLoggedIn(Pkcs11Error):
    """The operation needs the holder PIN first."""
    default_hint = "log in with the holder PIN first"


class TokenUnusable(Pkcs11Error):
    """The ANS vendor codes: card recognised but unusable, or re-initialisation needed."""

    default_hint = (
        "the card is in an unusable state (interrupted update): contact ANS card support, "
        "monserviceclient.cartes@asipsante.fr, 0 825 852 000"
    )


class PrivateKeyExportRefused(Pkcs11Error):
    """A card's private key was asked for in clear: it never leaves the card."""
    default_hint = "a private key on a CPS card never leaves the card; sign with it instead"


# --- PIN -----------------------------------------------------------------------


class PinError(Pkcs11Error):
    """Holder PIN or PUK problems."""

    default_hint = "check the PIN"


class PinIncorrect(PinError):
    """Wrong holder PIN; ``tries_left`` says how many remain when known."""

    def __init__(self, message: str, *, tries_left: int | None = None, **kw: object) -> None:
        if tries_left is not None:
            message += f"; {tries_left} tr{'y' if tries_left == 1 else 'ies'} left"
        kw.setdefault(
            "hint",
            "the PIN was wrong; the card blocks after 3 wrong entries in a row"
            if tries_left != 1
            else "one try left: a wrong PIN now blocks the card (unblock with the PUK)",
        )
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.tries_left = tries_left


class PinLocked(PinError):
    """The holder PIN is blocked."""
    default_hint = (
        "the PIN is blocked: unblock it with the unblocking code (code de déblocage) "
        "or order a new card"
    )


class FinalTryRefused(PinError):
    """A login would spend the last PIN try and the caller did not allow it."""

    default_hint = (
        "one PIN try is left: make sure of the PIN, then call again with "
        "allow_final_try=True"
    )


class PukIncorrect(PinError):
    """Wrong unblocking code (PUK); ``tries_left`` says how many remain when known."""
    def __init__(self, message: str, *, tries_left: int | None = None, **kw: object) -> None:
        if tries_left is not None:
            message += f"; {tries_left} tr{'y' if tries_left == 1 else 'ies'} left"
        kw.setdefault("hint", "the unblocking code (PUK) was wrong")
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.tries_left = tries_left


class PukLocked(PinError):
    """The unblocking code (PUK) is blocked too."""
    default_hint = "the unblocking code is blocked too: the card must be replaced (contact ANS)"


class PinEntryCancelled(PinError):
    """PIN entry on the reader's PIN pad was cancelled or timed out (CKR_FUNCTION_CANCELED):
    the card was not asked, no try was spent."""

    default_hint = (
        "type the PIN on the reader's keypad and confirm it (OK key) before the reader "
        "gives up, then try again: no PIN try was spent"
    )


OPENSC_UNBLOCK_SETTING = "user_pin_unblock_style = set_pin_in_unlogged_session;"
OPENSC_UNBLOCK_SETTING_NO_PUK_OBJECT = "user_pin_unblock_style = init_pin_in_so_session;"


class UnblockNotSupported(PinError):
    """The middleware refuses to unblock the holder PIN through PKCS#11 as configured
    (OpenSC without ``user_pin_unblock_style``)."""

    default_hint = (
        "OpenSC unblocks a PIN through PKCS#11 only when its configuration says how: "
        f"`{OPENSC_UNBLOCK_SETTING}` for a CPS3 as issued (its unblocking code is "
        f"listed on the card), `{OPENSC_UNBLOCK_SETTING_NO_PUK_OBJECT}` for a card that "
        "does not list it, in the `app opensc-pkcs11 { pkcs11 { ... } }` block of the "
        "file OPENSC_CONF names (default /etc/opensc/opensc.conf); it reads it when the "
        "module starts, so add the setting and restart the application. "
        "The ANS middleware (Cryptolib CPS) has no such limit"
    )


# --- selection -----------------------------------------------------------------


class SelectionError(CpsError):
    """No certificate/key, or more than one, fits the selection criteria.

    ``candidates`` pairs each candidate's description with the reasons it was
    rejected (empty for candidates that fit).
    """

    def __init__(
        self,
        message: str,
        *,
        candidates: Sequence[tuple[str, Sequence[str]]] = (),
        **kw: object,
    ) -> None:
        if candidates:
            lines = [
                f"{name}: {'; '.join(why) if why else 'fits'}" for name, why in candidates
            ]
            message += " — candidates: " + " | ".join(lines)
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.candidates = tuple((n, tuple(w)) for n, w in candidates)


class NoMatchingCertificate(SelectionError):
    """No certificate (or key) on the card fits the criteria."""
    default_hint = "no certificate on the card fits; relax the criteria or check the card"


class AmbiguousSelection(SelectionError):
    """Several certificates (or keys) fit the criteria."""
    default_hint = "several certificates fit; add a criterion (usage, label, CKA_ID)"


# --- TLS -----------------------------------------------------------------------


class TlsError(CpsError):
    """The TLS connection with the card failed."""
    default_hint = "the TLS connection with the card failed"


class BridgeUnavailable(TlsError):
    """The native OpenSSL bridge cannot be used with this Python's OpenSSL."""
    default_hint = (
        "the native OpenSSL bridge cannot be used with this Python: reinstall "
        "cps-middleware against the same OpenSSL 3 as Python's ssl module"
    )


class SignatureFailed(TlsError):
    """The key (card or file) failed to sign during a TLS handshake.

    Raised when the signer's own error is not a :class:`CpsError` (which is
    re-raised as it is); the signer's exception is the ``__cause__``.
    """

    default_hint = "the card could not sign: check that it is inserted and logged in"


# --- Pro Santé Connect / OAuth 2.0 ----------------------------------------------


class PscError(CpsError):
    """Pro Santé Connect (OpenID Connect / OAuth 2.0) failures."""

    default_hint = "the Pro Santé Connect exchange failed"


class ProviderUnreachable(PscError):
    """The provider could not be reached (network, DNS, TLS handshake)."""

    default_hint = (
        "check the network, the provider's address and the CA that signs its TLS certificate"
    )


class ProviderResponseInvalid(PscError):
    """The provider answered something that is not valid OpenID Connect / OAuth JSON."""

    default_hint = "the provider's answer is malformed: check the issuer URL and try again later"


class TokenRejected(PscError):
    """A token (ID token, access token, signed userinfo) failed validation.

    ``code_name`` says why: ``bad_signature``, ``unknown_key``, ``wrong_issuer``,
    ``wrong_audience``, ``expired``, ``not_yet_valid``, ``wrong_nonce``,
    ``acr_too_low``, ``cnf_mismatch``, ``malformed``, ``missing_claim``.
    """

    default_hint = "the token was not issued for this client or was altered: log in again"


class CibaCancelled(PscError):
    """The caller cancelled a CIBA authentication before the practitioner answered."""

    default_hint = "the login was cancelled; start a new one to retry"


class OAuthError(PscError):
    """The provider answered with an OAuth error (``code_name`` = its ``error`` value,
    ``code`` = the HTTP status, ``function`` = the endpoint).

    :func:`oauth_error` builds the subclass that matches the ``error`` value.
    """

    default_hint = "the provider refused the request"

    def __init__(
        self, message: str, *, error: str = "", description: str | None = None, **kw: object
    ) -> None:
        kw.setdefault("code_name", error or None)
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.error = error
        self.description = description


class OAuthInvalidRequest(OAuthError):
    """OAuth ``invalid_request``: a parameter is missing or malformed."""
    default_hint = "a parameter is missing or malformed (login_hint, binding_message, scope ...)"


class OAuthInvalidClient(OAuthError):
    """OAuth ``invalid_client``: the client is unknown or failed to authenticate."""
    default_hint = (
        "the provider did not accept the client: with tls_client_auth, check that the "
        "organisation certificate is valid, not revoked, and that its subject DN is the "
        "one registered for this client id"
    )


class OAuthInvalidGrant(OAuthError):
    """OAuth ``invalid_grant``: the grant is invalid, expired or revoked."""
    default_hint = "the code, refresh token or subject token is invalid, expired or revoked"


class OAuthUnauthorizedClient(OAuthError):
    """OAuth ``unauthorized_client``: this client may not use this grant."""
    default_hint = "this client is not allowed to use this grant type: check its registration"


class OAuthUnsupportedGrantType(OAuthError):
    """OAuth ``unsupported_grant_type``: the provider lacks this grant."""
    default_hint = "the provider does not support this grant type"


class OAuthInvalidScope(OAuthError):
    """OAuth ``invalid_scope``: a scope asked for is not allowed."""
    default_hint = "ask only for the scopes registered for this client"


class OAuthInvalidTarget(OAuthError):
    """OAuth ``invalid_target``: the audience or resource is unknown."""
    default_hint = "the audience or resource asked for is unknown to the authorisation server"


class OAuthAccessDenied(OAuthError):
    """OAuth ``access_denied``: the practitioner (or the provider) refused."""
    default_hint = "the practitioner refused the authentication (or the provider denied it)"


class OAuthExpiredToken(OAuthError):
    """OAuth ``expired_token``: the CIBA request expired before an answer."""
    default_hint = "the practitioner did not answer in time: start a new login"


class OAuthAuthorizationPending(OAuthError):
    """OAuth ``authorization_pending``: no answer yet (keep polling)."""
    default_hint = "the practitioner has not answered yet: keep polling"


class OAuthSlowDown(OAuthError):
    """OAuth ``slow_down``: poll less often."""
    default_hint = "polling too fast: wait 5 more seconds between polls"


class OAuthUnknownUserId(OAuthError):
    """OAuth ``unknown_user_id``: the provider does not know the identifier."""
    default_hint = "the provider does not know this national identifier (no e-CPS activated?)"


class OAuthInvalidBindingMessage(OAuthError):
    """OAuth ``invalid_binding_message``: the binding message is refused."""
    default_hint = "shorten the binding message and use plain letters, digits and punctuation"


class OAuthInvalidUserCode(OAuthError):
    """OAuth ``invalid_user_code``: the user code is wrong."""
    default_hint = "the user code is wrong"


class OAuthInvalidToken(OAuthError):
    """OAuth ``invalid_token``: the access token is invalid, expired or not bound to us."""
    default_hint = "the access token is invalid, expired, or bound to another certificate"


class OAuthInsufficientScope(OAuthError):
    """OAuth ``insufficient_scope``: the token lacks a required scope."""
    default_hint = "the access token lacks a scope the resource requires"


class OAuthInteractionRequired(OAuthError):
    """``login_required``, ``consent_required``, ``interaction_required``,
    ``account_selection_required``."""

    default_hint = "the practitioner must log in interactively"


class OAuthServerError(OAuthError):
    """``server_error`` and ``temporarily_unavailable``."""

    default_hint = "the provider failed or is overloaded: try again later"


OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    "invalid_request": OAuthInvalidRequest,
    "invalid_request_object": OAuthInvalidRequest,
    "invalid_request_uri": OAuthInvalidRequest,
    "invalid_client": OAuthInvalidClient,
    "invalid_grant": OAuthInvalidGrant,
    "unauthorized_client": OAuthUnauthorizedClient,
    "unsupported_grant_type": OAuthUnsupportedGrantType,
    "unsupported_response_type": OAuthUnsupportedGrantType,
    "unsupported_token_type": OAuthInvalidRequest,
    "invalid_scope": OAuthInvalidScope,
    "invalid_target": OAuthInvalidTarget,
    "access_denied": OAuthAccessDenied,
    "expired_token": OAuthExpiredToken,
    "authorization_pending": OAuthAuthorizationPending,
    "slow_down": OAuthSlowDown,
    "unknown_user_id": OAuthUnknownUserId,
    "invalid_binding_message": OAuthInvalidBindingMessage,
    "invalid_user_code": OAuthInvalidUserCode,
    "missing_user_code": OAuthInvalidUserCode,
    "transaction_failed": OAuthServerError,
    "invalid_token": OAuthInvalidToken,
    "insufficient_scope": OAuthInsufficientScope,
    "login_required": OAuthInteractionRequired,
    "consent_required": OAuthInteractionRequired,
    "interaction_required": OAuthInteractionRequired,
    "account_selection_required": OAuthInteractionRequired,
    "server_error": OAuthServerError,
    "temporarily_unavailable": OAuthServerError,
}


def oauth_error(
    error: str,
    description: str | None = None,
    *,
    status: int | None = None,
    endpoint: str | None = None,
) -> OAuthError:
    """The :class:`OAuthError` subclass for an OAuth ``error`` value (any unknown value
    gives :class:`OAuthError` itself)."""
    cls = OAUTH_ERRORS.get(error, OAuthError)
    message = f"the provider answered {error}" + (f": {description}" if description else "")
    return cls(message, error=error, description=description, code=status, function=endpoint)
# --- revocation sources (CRL download, OCSP) ---------------------------------------


class RevocationSourceError(CpsError):
    """A CRL or OCSP source could not be used; ``code_name`` says why (``TIMEOUT``,
    ``TOO_LARGE``, ``HTTP_STATUS``, ``NETWORK``, ``BAD_URL``, ``BAD_SIGNATURE`` ...)."""

    default_hint = (
        "check the network access to the IGC-Santé CRL and OCSP servers (proxy, firewall), "
        "or give the CRLs as files"
    )


class RevocationFetchError(RevocationSourceError):
    """A download failed: network error, HTTP error status, timeout or size limit."""


class RevocationDataRejected(RevocationSourceError):
    """A CRL or OCSP response was downloaded but cannot be trusted or does not apply
    (wrong issuer, bad signature, wrong scope, out of date)."""

    default_hint = (
        "the server sent revocation data that does not belong to this certificate's CA: "
        "check the configured CRL / OCSP addresses and mirrors"
    )
# --- browsers ----------------------------------------------------------------------


class BrowserSetupError(CpsError):
    """Registering the card middleware with a browser failed (``function`` is the NSS tool)."""

    default_hint = "check that the browser profile exists and is writable"


class BrowserRunning(BrowserSetupError):
    """The browser is running on that profile: its files are not edited under its feet."""

    default_hint = "close the browser (every window), then run the command again"


class NssToolsMissing(BrowserSetupError):
    """``modutil``/``certutil`` (NSS tools) are not installed."""

    default_hint = "install the NSS tools: apt-get install libnss3-tools (dnf install nss-tools)"
