"""Validate many CPS holder certificates at once against IGC-Santé (TEST here).

    python examples/validate_batch.py

Builds a small batch from the test PKI — good certificates, one revoked, one
expired, one from an unknown CA, one that is not a certificate at all — and
validates it with one reusable validator. Results are data, never exceptions.
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.serialization import Encoding

from cps_middleware import validation
from cps_middleware.testing import TestHolder, TestPki


def main() -> int:
    pki = TestPki(seed="example-validation")
    holders = [TestHolder(card_number=f"8025000001/28000001{i:02d}") for i in range(5)]
    cards = [pki.issue_card(h) for h in holders]
    pki.revoke(cards[1].authentication.certificate)
    start = pki.reference_time - dt.timedelta(days=900)
    expired = pki.issue_card(
        TestHolder(card_number="8025000001/2800000199"),
        not_before=start,
        not_after=start + dt.timedelta(days=365),
    )
    stranger = TestPki(seed="example-unknown-ca", ca_key_type="rsa2048").issue_card()

    batch = [c.authentication.der for c in cards]
    batch += [expired.authentication.der, stranger.authentication.der, b"not a certificate"]

    validator = (
        validation.ValidatorBuilder()
        .trust(validation.igc_sante_test(pki.ca_certificates))
        .crls([pki.crl().public_bytes(Encoding.DER), pki.crl("root").public_bytes(Encoding.DER)])
        .build()
    )
    results = validator.validate_many(batch)
    for i, result in enumerate(results):
        print(f"{i}: {result.status.name:<16} {result.reason}")
    print("summary:", {status.name: n for status, n in results.counts().items()})
    expected = [
        "VALID",
        "REVOKED",
        "VALID",
        "VALID",
        "VALID",
        "EXPIRED",
        "UNKNOWN_ISSUER",
        "MALFORMED",
    ]
    return 0 if [r.status.name for r in results] == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
