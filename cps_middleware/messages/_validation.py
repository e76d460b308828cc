"""Sentences of the chain validator: one per result status and per reason code.

A :class:`~cps_middleware.validation.ValidationResult` carries ``code`` (what
a program branches on); ``validation.<code>`` is its sentence here. The
result's ``reason`` adds the details (which CA, which date) in English.
"""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    # -- statuses ---------------------------------------------------------------------
    "validation.valid": Msg(
        fr="Certificat valide : la chaîne mène à une autorité de confiance.",
        en="Valid certificate: the chain leads to a trusted authority.",
    ),
    "validation.malformed": Msg(
        fr="Certificat illisible : son encodage n'est pas un certificat X.509 DER correct.",
        en="Unreadable certificate: its encoding is not a correct X.509 DER certificate.",
    ),
    "validation.unknown_issuer": Msg(
        fr="Émetteur inconnu : aucune autorité configurée n'a émis ce certificat.",
        en="Unknown issuer: no configured authority issued this certificate.",
    ),
    "validation.bad_signature": Msg(
        fr="Signature invalide : le certificat n'a pas été signé par la clé de son émetteur.",
        en="Bad signature: the certificate was not signed by its issuer's key.",
    ),
    "validation.not_yet_valid": Msg(
        fr="Certificat pas encore valide (date de début dans le futur).",
        en="Certificate not valid yet (its start date is in the future).",
    ),
    "validation.expired": Msg(
        fr="Certificat expiré, ou une autorité de la chaîne l'est.",
        en="The certificate, or an authority of its chain, has expired.",
    ),
    "validation.unhandled_critical_extension": Msg(
        fr="Une extension critique inconnue empêche d'accepter le certificat.",
        en="An unknown critical extension prevents accepting the certificate.",
    ),
    "validation.key_usage_not_allowed": Msg(
        fr="L'usage de la clé ne permet pas cet emploi du certificat.",
        en="The key usage does not allow this use of the certificate.",
    ),
    "validation.ca_constraint_violated": Msg(
        fr="Une autorité de la chaîne n'est pas autorisée à émettre des certificats.",
        en="An authority of the chain is not allowed to issue certificates.",
    ),
    "validation.path_too_long": Msg(
        fr="La chaîne compte plus d'autorités intermédiaires que permis.",
        en="The chain has more intermediate authorities than allowed.",
    ),
    "validation.revoked": Msg(
        fr="Certificat révoqué (listé dans la liste de révocation de son émetteur).",
        en="Revoked certificate (listed on its issuer's revocation list).",
    ),
    "validation.revocation_unknown": Msg(
        fr="Révocation non vérifiable : pas de liste de révocation utilisable.",
        en="Revocation cannot be checked: no usable revocation list.",
    ),
    "validation.policy_not_allowed": Msg(
        fr="Aucune politique de certification acceptée sur la chaîne.",
        en="No accepted certificate policy on the chain.",
    ),
    "validation.name_constraints_violated": Msg(
        fr="Un nom du certificat sort des contraintes de noms d'une autorité.",
        en="A name of the certificate is outside an authority's name constraints.",
    ),
    "validation.nonconforming": Msg(
        fr="Le certificat enfreint une règle de la RFC 5280.",
        en="The certificate breaks an RFC 5280 rule.",
    ),
    "validation.path_building_limit": Msg(
        fr="Recherche de chaîne abandonnée : trop de candidats ou de vérifications.",
        en="Path building gave up: too many candidates or checks.",
    ),
    # -- RFC 5280 issuer rules (code of a NONCONFORMING result) -----------------------------
    "validation.serial_not_positive": Msg(
        fr="Numéro de série nul ou négatif (RFC 5280 4.1.2.2).",
        en="Serial number zero or negative (RFC 5280 4.1.2.2).",
    ),
    "validation.aki_missing": Msg(
        fr="Identifiant de la clé de l'autorité absent (RFC 5280 4.2.1.1).",
        en="Authority key identifier missing (RFC 5280 4.2.1.1).",
    ),
    "validation.aki_critical": Msg(
        fr="Identifiant de la clé de l'autorité marqué critique (RFC 5280 4.2.1.1).",
        en="Authority key identifier marked critical (RFC 5280 4.2.1.1).",
    ),
    "validation.ski_missing": Msg(
        fr="Certificat d'autorité sans identifiant de sa clé (RFC 5280 4.2.1.2).",
        en="Authority certificate without a subject key identifier (RFC 5280 4.2.1.2).",
    ),
    "validation.ski_critical": Msg(
        fr="Identifiant de la clé du sujet marqué critique (RFC 5280 4.2.1.2).",
        en="Subject key identifier marked critical (RFC 5280 4.2.1.2).",
    ),
    "validation.ca_empty_subject": Msg(
        fr="Certificat d'autorité au sujet vide (RFC 5280 4.1.2.6).",
        en="Authority certificate with an empty subject (RFC 5280 4.1.2.6).",
    ),
    "validation.basic_constraints_not_critical": Msg(
        fr="Contraintes de base d'une autorité non marquées critiques (RFC 5280 4.2.1.9).",
        en="An authority's basic constraints not marked critical (RFC 5280 4.2.1.9).",
    ),
    "validation.key_cert_sign_without_ca": Msg(
        fr="Signature de certificats permise à un certificat qui n'est pas d'autorité "
        "(RFC 5280 4.2.1.3).",
        en="Certificate signing allowed to a non-authority certificate (RFC 5280 4.2.1.3).",
    ),
    "validation.eku_empty": Msg(
        fr="Extension d'usage étendu de la clé vide (RFC 5280 4.2.1.12).",
        en="Empty extended key usage extension (RFC 5280 4.2.1.12).",
    ),
    "validation.name_constraints_not_critical": Msg(
        fr="Contraintes de noms non marquées critiques (RFC 5280 4.2.1.10).",
        en="Name constraints not marked critical (RFC 5280 4.2.1.10).",
    ),
    "validation.empty_subject_without_critical_san": Msg(
        fr="Sujet vide sans nom alternatif critique (RFC 5280 4.2.1.6).",
        en="Empty subject without a critical alternative name (RFC 5280 4.2.1.6).",
    ),
    "validation.crl_number_missing": Msg(
        fr="Liste de révocation écartée : numéro de liste absent (RFC 5280 5.2.3).",
        en="Revocation list set aside: CRL number missing (RFC 5280 5.2.3).",
    ),
    "validation.crl_number_critical": Msg(
        fr="Liste de révocation écartée : numéro de liste marqué critique (RFC 5280 5.2.3).",
        en="Revocation list set aside: CRL number marked critical (RFC 5280 5.2.3).",
    ),
    # -- end-entity profile ("pkix" refuses, "card" accepts) -----------------------------------
    "validation.san_missing": Msg(
        fr="Certificat final sans nom alternatif (accepté seulement par le profil carte).",
        en="End-entity certificate without an alternative name (only the card profile accepts it).",
    ),
    "validation.non_repudiation_only": Msg(
        fr="Clé réservée à la non-répudiation (acceptée seulement par le profil carte).",
        en="Key for non-repudiation only (only the card profile accepts it).",
    ),
    # -- revocation information ------------------------------------------------------------------
    "validation.crl_missing": Msg(
        fr="Aucune liste de révocation en vigueur pour l'émetteur de ce certificat.",
        en="No revocation list in force for this certificate's issuer.",
    ),
    "validation.crl_expired": Msg(
        fr="La liste de révocation de l'émetteur a dépassé sa date de mise à jour.",
        en="The issuer's revocation list is past its next update.",
    ),
    "validation.crl_partial_reasons": Msg(
        fr="Les listes de révocation en vigueur ne couvrent que certains motifs.",
        en="The revocation lists in force cover only some reasons.",
    ),
    "validation.crl_indirect": Msg(
        fr="Liste de révocation indirecte : non prise en charge, elle est écartée.",
        en="Indirect revocation list: not supported, it is set aside.",
    ),
    # -- short labels (one per Status name) and the lines of `cps validate` --------------
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
    "validation.NONCONFORMING": Msg(fr="non conforme à la RFC 5280",
                                    en="not RFC 5280 conformant"),
    "validation.PATH_BUILDING_LIMIT": Msg(fr="limite de construction de chaîne atteinte",
                                          en="path-building limit reached"),
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
