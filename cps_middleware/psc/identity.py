"""The practitioner a PSC login names, as the same :class:`Practitioner` a card gives.

PSC claims (ID token and userinfo): ``SubjectNameID`` is the national
identifier (``PS_IdNat``: type digit then number, as in the card's CN),
``given_name`` / ``family_name``, ``SubjectRefPro.exercices[].codeProfession``
the profession (table G15), ``SubjectOrganization`` the organisation. There is
no certificate: the validity is the ID token's (``auth_time`` or ``iat`` to
``exp``), ``issuer`` the provider, ``usage`` unknown and serial / fingerprint
empty.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from cps_middleware.cards import nomenclature as nom
from cps_middleware.cards.identity import CertificateUsage, Practitioner, parse_ps_id_nat

__all__ = ["national_id", "practitioner_from_claims"]


def national_id(claims: Mapping[str, Any]) -> str | None:
    """``SubjectNameID``, else ``preferred_username``, else ``sub`` when it looks like one."""
    for name in ("SubjectNameID", "preferred_username", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and parse_ps_id_nat(value) is not None:
            return value.strip()
    return None


def _profession(claims: Mapping[str, Any]) -> nom.NomenclatureEntry | None:
    ref = claims.get("SubjectRefPro")
    exercices = ref.get("exercices") if isinstance(ref, Mapping) else None
    if isinstance(exercices, list):
        for ex in exercices:
            code = ex.get("codeProfession") if isinstance(ex, Mapping) else None
            if code not in (None, ""):
                return nom.profession(str(code))
    return None


def _time(value: object, default: _dt.datetime) -> _dt.datetime:
    if isinstance(value, int | float):
        return _dt.datetime.fromtimestamp(value, _dt.UTC)
    return default


def practitioner_from_claims(
    claims: Mapping[str, Any], *, test: bool = False
) -> Practitioner:
    """A :class:`Practitioner` from validated PSC claims (ID token merged with userinfo)."""
    ps_id_nat = national_id(claims)
    parsed = parse_ps_id_nat(ps_id_nat) if ps_id_nat else None
    now = _dt.datetime.now(_dt.UTC)
    problems: list[str] = []
    if ps_id_nat is None:
        problems.append("no national identifier (SubjectNameID) in the PSC claims")
    organisation = claims.get("SubjectOrganization")
    return Practitioner(
        given_name=claims.get("given_name") if isinstance(claims.get("given_name"), str) else None,
        surname=claims.get("family_name") if isinstance(claims.get("family_name"), str) else None,
        common_name=ps_id_nat,
        title=None,
        ps_id_nat=ps_id_nat,
        id_type=parsed[0] if parsed else None,
        id_number=parsed[1] if parsed else None,
        profession=_profession(claims),
        card_type=None,
        card_category=None,
        card_number=None,
        is_test_card=test,
        usage=CertificateUsage.UNKNOWN,
        not_before=_time(claims.get("auth_time", claims.get("iat")), now),
        not_after=_time(claims.get("exp"), now),
        issuer=str(claims.get("iss", "")),
        issuer_cn=None,
        serial_number=0,
        fingerprint_sha256="",
        organization=organisation if isinstance(organisation, str) else None,
        problems=tuple(problems),
    )
