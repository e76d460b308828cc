"""Chain-validation verdicts as a person reads them (``cps validate``, the demo)."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    # One label per validation.Status name.
    "validation.VALID": Msg(fr="valide", en="valid"),
    "validation.MALFORMED": Msg(fr="illisible", en="malformed"),
    "validation.UNKNOWN_ISSUER": Msg(fr="émetteur inconnu", en="unknown issuer"),
    "validation.BAD_SIGNATURE": Msg(fr="signature invalide", en="bad signature"),
    "validation.NOT_YET_VALID": Msg(fr="pas encore valide", en="not yet valid"),
    "validation.EXPIRED": Msg(fr="expiré", en="expired"),
    "validation.UNHANDLED_CRITICAL_EXTENSION": Msg(fr="extension critique inconnue",
                                                   en="unhandled critical extension"),
    "validation.KEY_USAGE_NOT_ALLOWED": Msg(fr="usage de clé non autorisé",
                                            en="key usage not allowed"),
    "validation.CA_CONSTRAINT_VIOLATED": Msg(fr="contrainte d'autorité violée",
                                             en="CA constraint violated"),
    "validation.PATH_TOO_LONG": Msg(fr="chaîne trop longue", en="path too long"),
    "validation.REVOKED": Msg(fr="révoqué", en="revoked"),
    "validation.REVOCATION_UNKNOWN": Msg(fr="révocation inconnue",
                                         en="revocation unknown"),
    "validation.POLICY_NOT_ALLOWED": Msg(fr="politique de certification non admise",
                                         en="policy not allowed"),
    "validation.NAME_CONSTRAINTS_VIOLATED": Msg(fr="contraintes de nom violées",
                                                en="name constraints violated"),
    "validation.verdict_valid": Msg(
        fr="Certificat valide : rattaché à « {anchor} » par {n} certificat(s) d'autorité.",
        en="Valid certificate: chains to \u201c{anchor}\u201d through {n} CA certificate(s)."),
    "validation.verdict_invalid": Msg(fr="Certificat non valide ({status}) : {detail}",
                                      en="Certificate not valid ({status}): {detail}"),
    "validation.revocation_not_checked": Msg(
        fr="Révocation non vérifiée (indiquez les listes de révocation avec --crl).",
        en="Revocation not checked (give the revocation lists with --crl)."),
    "validation.summary_title": Msg(fr="{n} certificat(s)", en="{n} certificate(s)"),
    "validation.col_file": Msg(fr="Fichier", en="File"),
    "validation.col_status": Msg(fr="Résultat", en="Status"),
    "validation.col_detail": Msg(fr="Détail technique", en="Technical detail"),
    "validation.col_count": Msg(fr="Nombre", en="Count"),
    "validation.details_title": Msg(fr="Certificats", en="Certificates"),
    "validation.progress": Msg(fr="vérification", en="validation"),
    "validation.unreadable": Msg(fr="illisible : {reason}", en="unreadable: {reason}"),
}
