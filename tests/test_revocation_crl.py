"""CRL fetching against a real HTTP server on loopback: cache, conditional GET, limits, checks."""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cps_middleware.errors import RevocationDataRejected, RevocationFetchError
from cps_middleware.testing.pki import Revocation, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import RevocationHttpServer
from cps_middleware.validation.revocation import (
    CrlFetcher,
    CrlOutcome,
    RevocationSources,
    verify_crl,
)

BASE = "http://igc-sante.esante.gouv.fr/CRL/"
LEAF_CRL = "/CRL/ACI-FO-PP-TEST.crl"  # the test card certificates' distribution point
ROOT_CRL = "/CRL/ACR-FO-TEST.crl"  # the intermediate CA's distribution point


class Clock:
    """A clock the test moves forward (the fetcher's refresh policy is in days)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def leaf(cps_pki: TestPki) -> x509.Certificate:
    card = cps_pki.issue_card(TestHolder(id_number="10001300001"), key_type="p256")
    return card.authentication.certificate


@pytest.fixture
def clock(cps_pki: TestPki) -> Clock:
    return Clock(cps_pki.reference_time + dt.timedelta(hours=10))


def fetcher_for(
    server: RevocationHttpServer, cache: Path | None, clock: Clock, **kw: object
) -> CrlFetcher:
    sources = RevocationSources.igc_sante().with_mirror(BASE, server.url("/CRL/"))
    return CrlFetcher(
        cache, sources=sources, clock=clock, rng=random.Random(7), **kw  # type: ignore[arg-type]
    )


def test_download_cache_and_conditional_refresh(
    cps_pki: TestPki,
    cps_revocation_server: RevocationHttpServer,
    leaf: x509.Certificate,
    clock: Clock,
    tmp_path: Path,
) -> None:
    server = cps_revocation_server
    inter = cps_pki.intermediate.certificate
    server.publish(LEAF_CRL, cps_pki.crl("intermediate"))
    fetcher = fetcher_for(server, tmp_path, clock)

    t0 = time.perf_counter()
    (first,) = fetcher.fetch_for(leaf, inter)
    t_download = time.perf_counter() - t0
    assert first.outcome is CrlOutcome.DOWNLOADED, first.error
    assert first.url == BASE + "ACI-FO-PP-TEST.crl"
    assert first.fetched_from == server.url(LEAF_CRL)
    assert first.current(clock.now)
    # refreshed at most daily, plus a random delay of at most an hour
    assert first.next_refresh is not None
    delay = first.next_refresh - clock.now
    assert dt.timedelta(days=1) <= delay <= dt.timedelta(days=1, hours=1)
    assert len(server.requests) == 1

    # within the day: from the cache, the server is not asked
    clock.now += dt.timedelta(hours=20)
    t0 = time.perf_counter()
    (again,) = fetcher.fetch_for(leaf, inter)
    t_cached = time.perf_counter() - t0
    assert again.outcome is CrlOutcome.CACHED and again.der == first.der
    assert len(server.requests) == 1

    # the cache is on disk: another fetcher (another process) uses it too
    other = fetcher_for(server, tmp_path, clock)
    assert other.fetch_for(leaf, inter)[0].outcome is CrlOutcome.CACHED
    assert len(server.requests) == 1

    # a day later: a conditional GET, answered 304
    clock.now += dt.timedelta(hours=6)
    (third,) = fetcher.fetch_for(leaf, inter)
    assert third.outcome is CrlOutcome.NOT_MODIFIED, third.error
    last = server.requests[-1]
    assert last.status == 304
    assert last.headers["if-none-match"] == server.published[LEAF_CRL].etag
    assert "if-modified-since" in last.headers

    # a new CRL is published: the next refresh downloads it
    newer = cps_pki.crl("intermediate", this_update=clock.now - dt.timedelta(minutes=1))
    server.publish(LEAF_CRL, newer)
    clock.now += dt.timedelta(days=1, hours=2)
    (fourth,) = fetcher.fetch_for(leaf, inter)
    assert fourth.outcome is CrlOutcome.DOWNLOADED
    assert fourth.der != first.der
    print(f"\nCRL fetch on loopback: download {t_download * 1000:.1f} ms, "
          f"cache hit {t_cached * 1000:.2f} ms")


def test_last_modified_alone_gives_304(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock, tmp_path: Path,
) -> None:
    server = cps_revocation_server
    server.publish(LEAF_CRL, cps_pki.crl("intermediate"), etag=False)
    fetcher = fetcher_for(server, tmp_path, clock)
    assert fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)[0].outcome is (
        CrlOutcome.DOWNLOADED
    )
    f = fetcher.fetch(
        BASE + "ACI-FO-PP-TEST.crl", cps_pki.intermediate.certificate, subject=leaf, force=True
    )
    assert f.outcome is CrlOutcome.NOT_MODIFIED
    assert "if-none-match" not in server.requests[-1].headers
    assert server.requests[-1].headers["if-modified-since"]


def test_refresh_follows_a_near_next_update(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    crl = cps_pki.crl(
        "intermediate",
        this_update=clock.now - dt.timedelta(hours=1),
        next_update=clock.now + dt.timedelta(hours=3),
    )
    cps_revocation_server.publish(LEAF_CRL, crl)
    fetcher = fetcher_for(cps_revocation_server, None, clock)  # memory cache
    f = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)[0]
    assert f.next_refresh is not None
    assert clock.now + dt.timedelta(hours=3) <= f.next_refresh <= clock.now + dt.timedelta(hours=4)
    # past nextUpdate the CRL is no longer current (and the fetcher asks again)
    clock.now += dt.timedelta(hours=5)
    assert not f.current(clock.now)
    again = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)
    assert again[0].outcome is CrlOutcome.NOT_MODIFIED


def test_slow_server_times_out(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    server = cps_revocation_server
    server.publish(LEAF_CRL, cps_pki.crl("intermediate"), delay=3.0)
    fetcher = fetcher_for(server, None, clock, timeout=0.3, deadline=5.0)
    t0 = time.monotonic()
    (f,) = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)
    took = time.monotonic() - t0
    assert f.outcome is CrlOutcome.FAILED and not f.usable
    assert isinstance(f.error, RevocationFetchError) and f.error.code_name == "TIMEOUT"
    assert took < 1.5
    # a server that answers at once but drips the body: the deadline stops it
    big = cps_pki.crl("intermediate", extra=[Revocation(n) for n in range(1, 200)])
    server.publish(LEAF_CRL, big, drip=0.2)  # ~40 pieces of 256 bytes: ~8 s
    fetcher = fetcher_for(server, None, clock, timeout=1.0, deadline=0.6)
    t0 = time.monotonic()
    (f,) = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)
    took = time.monotonic() - t0
    assert f.error is not None and f.error.code_name == "TIMEOUT"
    assert took < 1.2
    print(f"\ndeadline 0.6 s on a dripping server: gave up after {took:.2f} s")


@pytest.mark.parametrize("send_length", [True, False])
def test_oversized_body_is_refused(
    cps_revocation_server: RevocationHttpServer, cps_pki: TestPki, leaf: x509.Certificate,
    clock: Clock, send_length: bool,
) -> None:
    cps_revocation_server.publish(LEAF_CRL, b"0" * 300_000, send_length=send_length)
    fetcher = fetcher_for(cps_revocation_server, None, clock, max_bytes=100_000)
    (f,) = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)
    assert f.outcome is CrlOutcome.FAILED
    assert f.error is not None and f.error.code_name == "TOO_LARGE"


def test_wrong_issuer_and_forged_crls_are_refused(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock, tmp_path: Path,
) -> None:
    server = cps_revocation_server
    inter = cps_pki.intermediate.certificate
    fetcher = fetcher_for(server, tmp_path, clock)
    # the root's CRL where the card CA's is expected
    server.publish(LEAF_CRL, cps_pki.crl("root"))
    (f,) = fetcher.fetch_for(leaf, inter)
    assert f.outcome is CrlOutcome.REJECTED and not f.usable
    assert isinstance(f.error, RevocationDataRejected) and f.error.code_name == "WRONG_ISSUER"
    # the CA's name, another key
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(inter.subject)
        .last_update(clock.now - dt.timedelta(hours=1))
        .next_update(clock.now + dt.timedelta(days=7))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    server.publish(LEAF_CRL, forged)
    (f,) = fetcher.fetch_for(leaf, inter)
    assert f.error is not None and f.error.code_name == "BAD_SIGNATURE"
    server.publish(LEAF_CRL, b"<html>not a CRL</html>")
    (f,) = fetcher.fetch_for(leaf, inter)
    assert f.error is not None and f.error.code_name == "UNREADABLE"
    # nothing refused was cached; once a good CRL is cached, a forged one does not replace it
    assert not fetcher.fetch_for(leaf, inter)[0].usable
    server.publish(LEAF_CRL, cps_pki.crl("intermediate"))
    good = fetcher.fetch_for(leaf, inter)[0]
    assert good.outcome is CrlOutcome.DOWNLOADED
    server.publish(LEAF_CRL, forged)
    f = fetcher.fetch(good.url, inter, subject=leaf, force=True)
    assert f.outcome is CrlOutcome.CACHED_AFTER_ERROR
    assert f.der == good.der and f.error is not None and f.error.code_name == "BAD_SIGNATURE"
    # an older CRL (lower CRL number) than the cached one: a rollback
    older = cps_pki.crl("intermediate", this_update=clock.now - dt.timedelta(days=2))
    server.publish(LEAF_CRL, older)
    f = fetcher.fetch(good.url, inter, subject=leaf, force=True)
    assert f.error is not None and f.error.code_name == "ROLLBACK" and f.der == good.der


def _idp_crl(pki: TestPki, now: dt.datetime, idp: x509.IssuingDistributionPoint) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.intermediate.certificate.subject)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(42), critical=False)
        .add_extension(idp, critical=True)
        .sign(pki.intermediate.private_key, hashes.SHA256())
    )
    return crl.public_bytes(Encoding.DER)


def _idp(uri: str | None, **flags: bool) -> x509.IssuingDistributionPoint:
    kw = {
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
        **flags,
    }
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(uri)] if uri else None,
        relative_name=None,
        only_some_reasons=None,
        **kw,
    )


def test_scope_issuing_distribution_point(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    server = cps_revocation_server
    inter = cps_pki.intermediate.certificate
    fetcher = fetcher_for(server, None, clock)

    def fetch_with(idp: x509.IssuingDistributionPoint) -> tuple[CrlOutcome, str | None]:
        server.publish(LEAF_CRL, _idp_crl(cps_pki, clock.now, idp))
        f = fetcher.fetch(BASE + "ACI-FO-PP-TEST.crl", inter, subject=leaf,
                          distribution_point=[x509.UniformResourceIdentifier(
                              BASE + "ACI-FO-PP-TEST.crl")], force=True)
        return f.outcome, f.error.code_name if f.error else None

    # the partition named by the certificate's distribution point: used
    assert fetch_with(_idp(BASE + "ACI-FO-PP-TEST.crl", only_contains_user_certs=True)) == (
        CrlOutcome.DOWNLOADED, None)
    # another partition of the same CA
    assert fetch_with(_idp(BASE + "ACI-FO-PP-TEST-2.crl"))[1] == "OUT_OF_SCOPE"
    # a CRL of CA certificates only, for a holder certificate
    assert fetch_with(_idp(None, only_contains_ca_certs=True))[1] == "OUT_OF_SCOPE"
    # indirect CRLs are not supported
    assert fetch_with(_idp(None, indirect_crl=True))[1] == "INDIRECT"
    # and verify_crl says the same on its own
    data = _idp_crl(cps_pki, clock.now, _idp(BASE + "other.crl"))
    with pytest.raises(RevocationDataRejected) as err:
        verify_crl(data, inter, subject=leaf,
                   distribution_point=[x509.UniformResourceIdentifier(BASE + "x.crl")])
    assert err.value.code_name == "OUT_OF_SCOPE"


def test_ldap_only_distribution_point_uses_the_configured_location(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, clock: Clock,
) -> None:
    from cps_middleware.testing._keys import deterministic_key

    inter = cps_pki.intermediate
    key = deterministic_key("revocation-tests/ldap-only", "p256")
    ldap = ("ldap://annuaire-igc.esante.gouv.fr/cn=TEST%20AC%20IGC-SANTE%20FORT%20PERSONNES"
            "?certificaterevocationlist;binary")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "LDAP ONLY")]))
        .issuer_name(inter.certificate.subject)
        .public_key(key.public_key())
        .serial_number(0x1D4B)
        .not_valid_before(clock.now - dt.timedelta(days=1))
        .not_valid_after(clock.now + dt.timedelta(days=30))
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(ldap)], None, None, None)]), critical=False)
        .sign(inter.private_key, hashes.SHA256())
    )
    cps_revocation_server.publish(LEAF_CRL, cps_pki.crl("intermediate"))
    fetcher = fetcher_for(cps_revocation_server, None, clock)
    fetches = fetcher.fetch_for(cert, inter.certificate)
    assert [f.outcome for f in fetches] == [CrlOutcome.LDAP_IGNORED, CrlOutcome.DOWNLOADED]
    assert fetches[0].url == ldap and not fetches[0].usable
    assert fetches[1].url == BASE + "ACI-FO-PP-TEST.crl"  # IGC-Santé's published address
    assert "LDAP" in fetches[0].message("fr") and "LDAP" in fetches[0].message("en")
    # without a configured location, only the note remains
    bare = CrlFetcher(None, sources=RevocationSources(), clock=clock)
    assert [f.outcome for f in bare.fetch_for(cert, inter.certificate)] == [
        CrlOutcome.LDAP_IGNORED
    ]


def test_http_errors_and_unreachable_server(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    fetcher = fetcher_for(cps_revocation_server, None, clock)
    (f,) = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)  # nothing published
    assert f.error is not None and f.error.code_name == "HTTP_STATUS" and f.error.code == 404
    fr, en = f.message("fr"), f.message("en")
    assert fr != en and f.url in fr and f.url in en
    # a closed port
    port = cps_revocation_server.port
    cps_revocation_server.stop()
    sources = RevocationSources().with_mirror(BASE, f"http://127.0.0.1:{port}/CRL/")
    f = CrlFetcher(None, sources=sources, clock=clock, timeout=2).fetch_for(
        leaf, cps_pki.intermediate.certificate)[0]
    assert f.outcome is CrlOutcome.FAILED
    assert f.error is not None and f.error.code_name == "NETWORK"
    # and no address but http(s)
    f = CrlFetcher(None, sources=RevocationSources(), clock=clock).fetch(
        "file:///etc/passwd", cps_pki.intermediate.certificate)
    assert f.error is not None and f.error.code_name == "BAD_URL"


def test_revoked_entries_survive_the_round_trip(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    crl = cps_pki.crl("intermediate", extra=[Revocation(leaf.serial_number)])
    cps_revocation_server.publish(LEAF_CRL, crl)
    (f,) = fetcher_for(cps_revocation_server, None, clock).fetch_for(
        leaf, cps_pki.intermediate.certificate)
    assert f.der is not None
    got = x509.load_der_x509_crl(f.der)
    assert got.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


def test_deadline_cuts_a_server_that_never_answers(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock,
) -> None:
    # a generous per-read timeout, a short deadline: the watchdog ends the wait
    cps_revocation_server.publish(LEAF_CRL, cps_pki.crl("intermediate"), delay=3.0)
    fetcher = fetcher_for(cps_revocation_server, None, clock, timeout=10.0, deadline=0.4)
    t0 = time.monotonic()
    (f,) = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)
    assert f.error is not None and f.error.code_name == "TIMEOUT"
    assert time.monotonic() - t0 < 1.0


def test_damaged_cache_is_downloaded_again(
    cps_pki: TestPki, cps_revocation_server: RevocationHttpServer, leaf: x509.Certificate,
    clock: Clock, tmp_path: Path,
) -> None:
    cps_revocation_server.publish(LEAF_CRL, cps_pki.crl("intermediate"))
    fetcher = fetcher_for(cps_revocation_server, tmp_path, clock)
    assert fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)[0].outcome is (
        CrlOutcome.DOWNLOADED)
    (crl_file,) = tmp_path.glob("*.crl")
    crl_file.write_bytes(crl_file.read_bytes()[:-1] + b"\x00")  # one byte changed
    f = fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)[0]
    assert f.outcome is CrlOutcome.DOWNLOADED and len(cps_revocation_server.requests) == 2
    (meta,) = tmp_path.glob("*.json")
    meta.write_text("{not json")
    assert fetcher.fetch_for(leaf, cps_pki.intermediate.certificate)[0].outcome is (
        CrlOutcome.DOWNLOADED)


def test_sources_mirrors_and_locations() -> None:
    src = RevocationSources.igc_sante()
    assert src.ocsp_url == "http://ocsp.esante.gouv.fr"
    assert src.crl_locations["AC RACINE IGC-SANTE FORT"] == (BASE + "ACR-FO.crl",)
    m = src.with_mirror("http://igc-sante.esante.gouv.fr/", "http://a/").with_mirror(
        BASE, "http://b/crl/")
    assert m.rewrite(BASE + "ACR-EL.crl") == "http://b/crl/ACR-EL.crl"  # longest prefix
    assert m.rewrite("http://igc-sante.esante.gouv.fr/x") == "http://a/x"
    assert m.rewrite("http://elsewhere/x.crl") == "http://elsewhere/x.crl"
    assert src.with_crl("AC X", "http://x/1.crl").crl_locations["AC X"] == ("http://x/1.crl",)
