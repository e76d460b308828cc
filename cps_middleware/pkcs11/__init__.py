"""PKCS#11 layer: find and load the middleware, open CPS tokens, holder PIN, objects, signing.

Typical use::

    from cps_middleware.pkcs11 import Mechanism, Pin, open_token

    token = open_token()                      # the one token present (cps_only=True filters)
    print(token.pin_status)                   # PinStatus, read from flags, no PIN try spent
    token.login(Pin("1234"))                  # PinIncorrect / PinLocked / FinalTryRefused
    cert = token.certificate(label="Certificat d'Authentification CPS").certificate
    key = token.private_key(label="CPS_PRIV_AUT")
    sig = token.sign(key, Mechanism.SHA256_RSA_PKCS, b"message")

Low-level signing for the layers above (the ``cryptography`` key objects, the
TLS bridge): :meth:`Token.sign` takes an explicit mechanism and, for PSS,
explicit :class:`PssParams` — python-pkcs11's defaults (SHA-512 for RSA,
SHA-1 for PSS) are never used. ``CKM_RSA_PKCS`` expects a DER DigestInfo,
``CKM_RSA_PKCS_PSS`` a digest, the ``SHAxxx_`` mechanisms the message.

Concurrency: a module is loaded once per resolved path (:func:`load_module`);
every call into it holds one lock per module, because python-pkcs11
initialises modules without OS locking and releases the GIL. Tokens are
thread-safe; :meth:`Token.sign` from many threads uses a pool of sessions.
In a forked child the module is re-initialised on first use and the child
logs in again. ``login_async`` / ``sign_async`` run in a worker thread.

Errors: every PKCS#11 return code maps (one table, :data:`CKR`) to a
:class:`~cps_middleware.errors.CpsError` subclass carrying the function, the
code and its name, the module path and a hint; python-pkcs11's exception is
the ``__cause__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# No python-pkcs11 here: a program that only makes a Pin (or reads the discovery
# candidates) does not load it. The rest is imported on first use (PEP 562).
from cps_middleware.pkcs11._discovery import ENV_VAR, Candidate, candidate_paths, diagnose
from cps_middleware.pkcs11._pin import Pin, PinStatus, Puk

if TYPE_CHECKING:
    from cps_middleware.pkcs11._ckr import CKR, code_name
    from cps_middleware.pkcs11._mechanisms import (
        Mechanism,
        Mgf,
        OaepParams,
        PssParams,
        mechanism_name,
    )
    from cps_middleware.pkcs11._module import (
        Module,
        SlotReport,
        TokenFlags,
        TokenInfo,
        load_module,
        loaded_modules,
    )
    from cps_middleware.pkcs11._token import (
        DataObject,
        KeyRef,
        StoredCertificate,
        Token,
    )

_LAZY = {
    "CKR": "_ckr", "code_name": "_ckr",
    "Mechanism": "_mechanisms", "Mgf": "_mechanisms", "OaepParams": "_mechanisms",
    "PssParams": "_mechanisms", "mechanism_name": "_mechanisms",
    "Module": "_module", "SlotReport": "_module", "TokenFlags": "_module",
    "TokenInfo": "_module", "load_module": "_module", "loaded_modules": "_module",
    "DataObject": "_token", "KeyRef": "_token", "StoredCertificate": "_token", "Token": "_token",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CKR",
    "ENV_VAR",
    "Candidate",
    "DataObject",
    "KeyRef",
    "Mechanism",
    "Mgf",
    "Module",
    "OaepParams",
    "Pin",
    "PinStatus",
    "PssParams",
    "Puk",
    "SlotReport",
    "StoredCertificate",
    "Token",
    "TokenFlags",
    "TokenInfo",
    "candidate_paths",
    "code_name",
    "diagnose",
    "list_tokens",
    "load_module",
    "loaded_modules",
    "mechanism_name",
    "open_token",
]


def list_tokens(module_path: str | None = None) -> list[TokenInfo]:
    """The tokens present in the module's slots (unreadable slots skipped and logged)."""
    from cps_middleware.pkcs11._module import load_module

    return load_module(module_path).tokens()


def open_token(
    module_path: str | None = None,
    *,
    serial: str | None = None,
    label: str | None = None,
    slot_id: int | None = None,
    cps_only: bool = False,
) -> Token:
    """The one token matching the criteria (NoSuchToken / MultipleTokens otherwise)."""
    from cps_middleware.pkcs11._module import load_module

    return load_module(module_path).open_token(
        serial=serial, label=label, slot_id=slot_id, cps_only=cps_only
    )
