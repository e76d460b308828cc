"""Certificate + key selection with explanations (cps_middleware.selection)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps_middleware.cards.identity import (
    CERTIFICATE_LABELS,
    PRIVATE_KEY_LABELS,
    CertificateUsage,
)
from cps_middleware.errors import AmbiguousSelection, InvalidInput, NoMatchingCertificate
from cps_middleware.selection import (
    CertificateCandidate,
    CertificateCriteria,
    KeyCandidate,
    pair_key,
    parse_usage,
    select,
)
from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki

AUTH_LABEL = "Certificat d'Authentification CPS"
SIGN_LABEL = "Certificat de Signature CPS"


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki(seed="selection-tests", ca_key_type="p256")


@pytest.fixture(scope="module")
def creds(pki: TestPki) -> CardCredentials:
    return pki.issue_card(TestHolder(), key_type="p256")


def _card(
    creds: CardCredentials, *, ids: tuple[bytes, bytes, bytes, bytes] | None = None
) -> tuple[list[CertificateCandidate], list[KeyCandidate]]:
    """Candidates as the ANS middleware shows them (labels of DOMAIN.md)."""
    a_id, s_id, ka_id, ks_id = ids or (b"\x01", b"\x02", b"\x01", b"\x02")
    certs = [
        CertificateCandidate(creds.authentication.certificate, AUTH_LABEL, a_id),
        CertificateCandidate(creds.signature.certificate, SIGN_LABEL, s_id),
        *(CertificateCandidate(c, "CA", b"") for c in creds.chain),
    ]
    keys = [
        KeyCandidate(
            "CPS_PRIV_AUT", ka_id, "EC", public_key=creds.authentication.private_key.public_key()
        ),
        KeyCandidate(
            "CPS_PRIV_SIG", ks_id, "EC", public_key=creds.signature.private_key.public_key()
        ),
    ]
    return certs, keys


def test_defaults_pick_auth_for_tls_and_sign_for_documents(creds: CardCredentials) -> None:
    certs, keys = _card(creds)
    tls = select(certs, keys, CertificateCriteria.for_tls())
    assert tls.certificate.label == AUTH_LABEL and tls.key.label == "CPS_PRIV_AUT"
    assert tls.paired_by == "id"
    assert tls.holder.usage is CertificateUsage.AUTHENTICATION
    doc = select(certs, keys, CertificateCriteria.for_signing())
    assert doc.certificate.label == SIGN_LABEL and doc.key.label == "CPS_PRIV_SIG"


def test_pairing_by_label_when_cka_ids_differ(creds: CardCredentials) -> None:
    # Another middleware: certificate ids are not the keys' ids.
    certs, keys = _card(creds, ids=(b"\xa1", b"\xa2", b"\x51", b"\x52"))
    chosen = select(certs, keys, CertificateCriteria.for_signing())
    assert chosen.key.label == "CPS_PRIV_SIG" and chosen.paired_by == "label"


def test_pairing_refuses_a_key_whose_public_part_differs(creds: CardCredentials) -> None:
    certs, keys = _card(creds)
    swapped = [
        KeyCandidate("CPS_PRIV_SIG", b"\x01", "EC", public_key=keys[1].public_key),
        KeyCandidate("CPS_PRIV_AUT", b"\x02", "EC", public_key=keys[0].public_key),
    ]
    # Same ids as the certificates but crossed public keys: ids lose to key material.
    chosen = select(certs, swapped, CertificateCriteria.for_tls())
    assert chosen.key.label == "CPS_PRIV_AUT" and chosen.paired_by == "label"


def test_pairing_by_identical_label_as_opensc_does(creds: CardCredentials) -> None:
    cert = CertificateCandidate(creds.authentication.certificate, "Authentication", b"\x45")
    key = KeyCandidate("Authentication", b"\x99", "EC")
    other = KeyCandidate("Signature", b"\x98", "EC")
    assert pair_key(cert, [other, key]) == (key, "label")


def test_pairing_by_usage_for_unknown_certificate_label(creds: CardCredentials) -> None:
    cert = CertificateCandidate(creds.signature.certificate, "whatever", b"\x07")
    keys = [KeyCandidate("CPS_PRIV_AUT", b"\x01", "EC"), KeyCandidate("CPS_PRIV_SIG", b"\x02")]
    assert pair_key(cert, keys) == (keys[1], "label")


def test_no_match_lists_every_candidate_and_why(creds: CardCredentials) -> None:
    certs, keys = _card(creds)
    criteria = CertificateCriteria.for_tls(holder_id="899999999999", key_type="RSA")
    with pytest.raises(NoMatchingCertificate) as info:
        select(certs, keys, criteria)
    err = info.value
    assert len(err.candidates) == 4
    by_name = {name.split(",")[0]: why for name, why in err.candidates}
    auth_why = by_name[repr(AUTH_LABEL)]
    assert "holder is 810001234567, wanted 899999999999" in auth_why
    assert "key type is EC, wanted RSA" in auth_why
    sign_why = by_name[repr(SIGN_LABEL)]
    assert "usage is sign, wanted auth" in sign_why
    assert any("CA certificate" in w for w in by_name["'CA'"])
    text = str(err)
    assert "holder_id=899999999999" in text and "usage is sign, wanted auth" in text


def test_missing_key_is_a_reason(creds: CardCredentials) -> None:
    certs, keys = _card(creds)
    with pytest.raises(NoMatchingCertificate) as info:
        select(certs, keys[:1], CertificateCriteria.for_signing())
    sign_reasons = dict(info.value.candidates)[
        next(n for n, _ in info.value.candidates if n.startswith(repr(SIGN_LABEL)))
    ]
    assert any("no private key" in r for r in sign_reasons)


def test_ambiguous_lists_the_fitting_ones(creds: CardCredentials) -> None:
    certs, keys = _card(creds)
    with pytest.raises(AmbiguousSelection) as info:
        select(certs, keys, CertificateCriteria())
    fits = [name for name, why in info.value.candidates if not why]
    assert len(fits) == 2
    assert "fits" in str(info.value)


def test_each_criterion(pki: TestPki, creds: CardCredentials) -> None:
    auth = CertificateCandidate(creds.authentication.certificate, AUTH_LABEL, b"\x01")
    holder = auth.holder
    ok = CertificateCriteria(
        usage=CertificateUsage.AUTHENTICATION,
        label=AUTH_LABEL,
        cka_id=b"\x01",
        issuer="TEST AC IGC-SANTE FORT PERSONNES",
        valid_at=holder.not_before + dt.timedelta(days=1),
        key_type="EC",
        holder_id="10001234567",
    )
    assert ok.mismatches(auth) == []
    assert (
        ok.with_(issuer=creds.authentication.certificate.issuer.rfc4514_string()).mismatches(auth)
        == []
    )
    assert ok.with_(label="x").mismatches(auth) == [f"label is {AUTH_LABEL!r}, wanted 'x'"]
    assert ok.with_(cka_id=b"\x02").mismatches(auth) == ["CKA_ID is 01, wanted 02"]
    assert ok.with_(issuer="AC IGC-SANTE FORT PERSONNES").mismatches(auth) == [
        "issuer is 'TEST AC IGC-SANTE FORT PERSONNES', wanted 'AC IGC-SANTE FORT PERSONNES'"
    ]
    late = ok.with_(valid_at=holder.not_after + dt.timedelta(seconds=1))
    assert late.mismatches(auth) == [f"expired on {holder.not_after.isoformat()}"]
    early = ok.with_(valid_at=(holder.not_before - dt.timedelta(days=1)).replace(tzinfo=None))
    assert early.mismatches(auth) == [f"not valid before {holder.not_before.isoformat()}"]
    ca = CertificateCandidate(pki.root.certificate, "CA")
    assert CertificateCriteria(include_authorities=True).mismatches(ca) == []


def test_parse_usage() -> None:
    assert parse_usage("auth") is CertificateUsage.AUTHENTICATION
    assert parse_usage("SIGN") is CertificateUsage.SIGNATURE
    assert parse_usage(CertificateUsage.TECHNICAL) is CertificateUsage.TECHNICAL
    with pytest.raises(InvalidInput):
        parse_usage("encrypt")


def test_empty_token() -> None:
    with pytest.raises(NoMatchingCertificate, match="holds no certificate"):
        select([], [], CertificateCriteria.for_tls())


# -- property: each criterion explains exactly its own mismatch ------------------------

_FIELDS = ("usage", "label", "cka_id", "issuer", "valid_at", "key_type", "holder_id")


@settings(max_examples=60, deadline=None)
@given(
    wrong=st.sets(st.sampled_from(_FIELDS)),
    use_sign=st.booleans(),
    label=st.text(min_size=1, max_size=20).filter(
        lambda t: t not in CERTIFICATE_LABELS and t not in PRIVATE_KEY_LABELS
    ),
    cka_id=st.binary(min_size=1, max_size=20),
)
def test_mismatches_name_exactly_the_wrong_fields(
    creds: CardCredentials, wrong: set[str], use_sign: bool, label: str, cka_id: bytes
) -> None:
    ck = creds.signature if use_sign else creds.authentication
    candidate = CertificateCandidate(ck.certificate, label, cka_id)
    holder = candidate.holder
    right = {
        "usage": holder.usage,
        "label": label,
        "cka_id": cka_id,
        "issuer": holder.issuer_cn,
        "valid_at": holder.not_before + (holder.not_after - holder.not_before) / 2,
        "key_type": "EC",
        "holder_id": holder.ps_id_nat,
    }
    other = {
        "usage": CertificateUsage.AUTHENTICATION if use_sign else CertificateUsage.SIGNATURE,
        "label": label + "x",
        "cka_id": cka_id + b"\x00",
        "issuer": "AC IGC-SANTE FORT PERSONNES",
        "valid_at": holder.not_after + dt.timedelta(days=1),
        "key_type": "RSA",
        "holder_id": "899999999999",
    }
    criteria = CertificateCriteria(**{f: other[f] if f in wrong else right[f] for f in _FIELDS})
    reasons = criteria.mismatches(candidate)
    assert len(reasons) == len(wrong)
    keys = [
        KeyCandidate("CPS_PRIV_AUT", b"\xaa", "EC"),
        KeyCandidate("CPS_PRIV_SIG", b"\xbb", "EC"),
    ]
    if wrong:
        with pytest.raises(NoMatchingCertificate) as info:
            select([candidate], keys, criteria)
        assert list(info.value.candidates[0][1]) == reasons
    else:
        # Fits; paired by usage since the certificate's label and ids are arbitrary.
        chosen = select([candidate], keys, criteria)
        assert chosen.key.label == ("CPS_PRIV_SIG" if use_sign else "CPS_PRIV_AUT")
