"""Object identifiers found in CPS holder certificates.

The health "NOS" arc (1.2.250.1.71) carries private extensions that say who
the holder is for the health system. Their meaning is data, kept here so that a
correction is a one-line change.
"""

from __future__ import annotations

from cryptography.x509.oid import ObjectIdentifier

__all__ = [
    "NOS_CARD_CATEGORY",
    "NOS_CARD_NUMBER",
    "NOS_CARD_TYPE",
    "NOS_EXTENSIONS",
    "NOS_PROFESSION",
    "UID",
]

NOS_CARD_TYPE = ObjectIdentifier("1.2.250.1.71.1.2.2")  # INTEGER, table G02
NOS_CARD_NUMBER = ObjectIdentifier("1.2.250.1.71.1.2.3")  # PrintableString issuer/serial
NOS_CARD_CATEGORY = ObjectIdentifier("1.2.250.1.71.1.2.5")  # OCTET STRING, table G01
NOS_PROFESSION = ObjectIdentifier("1.2.250.1.71.1.2.7")  # INTEGER, table G15

# Attribute sometimes holding the national identifier in older subjects.
UID = ObjectIdentifier("0.9.2342.19200300.100.1.1")

NOS_EXTENSIONS: dict[ObjectIdentifier, str] = {
    NOS_CARD_TYPE: "card type (G02)",
    NOS_CARD_NUMBER: "card number",
    NOS_CARD_CATEGORY: "card category (G01)",
    NOS_PROFESSION: "profession (G15)",
}
