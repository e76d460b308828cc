"""Revocation checked the way IGC-Santé publishes it: CRLs over HTTP, then OCSP.

The example plays IGC-Santé on this machine: a local HTTP server publishes the
test hierarchy's CRLs (as ``http://igc-sante.esante.gouv.fr/CRL/`` does) and
``openssl ocsp`` answers as the OCSP responder. The checker is pointed at them
with a URL mirror and a responder URL; in production you would leave both at
their defaults (``RevocationSources.igc_sante()``, ``OcspClient()``).
"""

from __future__ import annotations

import datetime as dt
import tempfile

from cryptography import x509

from cps_middleware.testing.pki import Revocation, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import OpenSslOcspResponder, RevocationHttpServer
from cps_middleware.validation import ValidatorBuilder, igc_sante_test
from cps_middleware.validation.ocsp import OcspClient
from cps_middleware.validation.revocation import CrlFetcher, RevocationChecker, RevocationSources


def main() -> None:
    pki = TestPki(seed="example-revocation", ca_key_type="p256")  # quick to make
    cards = [
        pki.issue_card(TestHolder(id_number=f"1000900000{n}", card_number=f"8025000001/2890000{n}"),
                       key_type="p256").authentication.certificate
        for n in range(3)
    ]
    good, revoked_by_crl, revoked_by_ocsp = cards
    builder = ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates))

    with RevocationHttpServer() as server, tempfile.TemporaryDirectory() as cache:
        server.publish("/CRL/ACR-FO-TEST.crl", pki.crl("root"))
        server.publish("/CRL/ACI-FO-PP-TEST.crl", pki.crl(
            "intermediate", extra=[Revocation(revoked_by_crl.serial_number)]))
        sources = RevocationSources.igc_sante().with_mirror(
            "http://igc-sante.esante.gouv.fr/CRL/", server.url("/CRL/"))
        checker = RevocationChecker(builder, failure="hard",
                                    fetcher=CrlFetcher(cache, sources=sources))
        print("1. CRLs fetched from the certificates' distribution points:")
        for name, r in zip(("good", "revoked (CRL)"), checker.validate_many(cards[:2]),
                           strict=True):
            print(f"   {name:14} {r.status.name:20} {r.result.reason}")
            for note in r.notes("en"):
                print(f"   {'':14} {note}")

        # The card CA's CRL is no longer published: OCSP answers instead.
        del server.published["/CRL/ACI-FO-PP-TEST.crl"]
        with OpenSslOcspResponder(
            pki.intermediate.certificate, pki.ocsp_responder(), good=[good],
            revoked=[(revoked_by_ocsp, x509.ReasonFlags.key_compromise,
                      pki.reference_time - dt.timedelta(days=1))],
        ) as responder:
            checker = RevocationChecker(
                builder, failure="hard", ocsp=OcspClient(responder.url),
                fetcher=CrlFetcher(None, sources=sources))
            print("2. no CRL for the card CA: OCSP (delegated responder) answers:")
            for name, r in zip(("good", "revoked (OCSP)"),
                               checker.validate_many([good, revoked_by_ocsp]), strict=True):
                print(f"   {name:14} {r.status.name:20} {r.result.reason}")
            down = responder.url
        print("3. the responder is gone:")
        for failure in ("hard", "soft"):
            checker = RevocationChecker(
                builder, failure=failure, ocsp=OcspClient(down, timeout=1),  # type: ignore[arg-type]
                fetcher=CrlFetcher(None, sources=sources))
            r = checker.validate(good)
            print(f"   {failure}-fail: {r.status.name} (soft_failed={r.soft_failed})")


if __name__ == "__main__":
    main()
