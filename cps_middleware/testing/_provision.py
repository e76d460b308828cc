"""Writes a CPS test card's objects into a fresh SoftHSM token.

Runs as ``python -m cps_middleware.testing._provision`` in its own process:
SoftHSM reads ``SOFTHSM2_CONF`` once, at C_Initialize, so the card's private
configuration must be in place before the library is loaded, and the calling
process may already have SoftHSM (or the test-token module) loaded with
another configuration. The request comes as JSON on standard input.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

SOFTHSM_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def softhsm_library() -> str | None:
    """Path of SoftHSM's PKCS#11 library (``CPS_SOFTHSM_MODULE`` overrides)."""
    env = os.environ.get("CPS_SOFTHSM_MODULE")
    if env:
        return env
    return next((p for p in SOFTHSM_PATHS if os.path.exists(p)), None)


def _provision(req: dict[str, Any]) -> None:
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass
    from pkcs11.util.ec import decode_ec_private_key
    from pkcs11.util.rsa import decode_rsa_private_key
    from pkcs11.util.x509 import decode_x509_certificate

    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            req["label"],
            "--pin",
            req["pin"],
            "--so-pin",
            req["puk"],
        ],
        check=True,
        capture_output=True,
    )
    lib = pkcs11.lib(req["softhsm"])
    token = lib.get_token(token_label=req["label"])
    with token.open(rw=True, user_pin=req["pin"]) as session:
        for cert in req["certificates"]:
            attrs = decode_x509_certificate(base64.b64decode(cert["der"]))
            attrs.update(
                {
                    Attribute.LABEL: cert["label"],
                    Attribute.ID: bytes.fromhex(cert["id"]),
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                }
            )
            session.create_object(attrs)
        for key in req["keys"]:
            der = base64.b64decode(key["der"])
            attrs = decode_ec_private_key(der) if key["ec"] else decode_rsa_private_key(der)
            attrs.update(
                {
                    Attribute.LABEL: key["label"],
                    Attribute.ID: bytes.fromhex(key["id"]),
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.DECRYPT: bool(key["decrypt"]) and not key["ec"],
                    Attribute.UNWRAP: False,
                }
            )
            if key["ec"]:
                attrs[Attribute.DERIVE] = False
            session.create_object(attrs)
            pub = dict(key["public"])
            pub_attrs = {
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.LABEL: key["label"].replace("PRIV", "PUB"),
                Attribute.ID: bytes.fromhex(key["id"]),
                Attribute.TOKEN: True,
                Attribute.VERIFY: True,
            }
            if key["ec"]:
                from pkcs11 import KeyType

                pub_attrs[Attribute.KEY_TYPE] = KeyType.EC
                pub_attrs[Attribute.EC_PARAMS] = bytes.fromhex(pub["params"])
                pub_attrs[Attribute.EC_POINT] = bytes.fromhex(pub["point"])
            else:
                from pkcs11 import KeyType

                pub_attrs[Attribute.KEY_TYPE] = KeyType.RSA
                pub_attrs[Attribute.MODULUS] = bytes.fromhex(pub["n"])
                pub_attrs[Attribute.PUBLIC_EXPONENT] = bytes.fromhex(pub["e"])
            session.create_object(pub_attrs)
        for data in req["data"]:
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.LABEL: data["label"],
                    Attribute.APPLICATION: "CPS",
                    Attribute.VALUE: base64.b64decode(data["value"]),
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: data["private"],
                    Attribute.MODIFIABLE: data["label"] == "CPS_DATA",
                }
            )


def main() -> int:
    req = json.load(sys.stdin)
    try:
        _provision(req)
    except Exception as exc:  # reported to the parent, which raises TestCardError
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
