"""Sentences about revocation sources: CRL downloads, OCSP answers, soft/hard-fail."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    # one CRL fetch ({url}: the address as published; {why}: a revocation.why_* sentence)
    "revocation.crl_downloaded": Msg(
        fr="LCR téléchargée et vérifiée : {url}", en="CRL downloaded and checked: {url}"
    ),
    "revocation.crl_not_modified": Msg(
        fr="LCR inchangée sur le serveur, copie locale utilisée : {url}",
        en="CRL unchanged on the server, local copy used: {url}",
    ),
    "revocation.crl_cached": Msg(
        fr="LCR récente en cache, serveur non interrogé : {url}",
        en="recent CRL in the cache, server not asked: {url}",
    ),
    "revocation.crl_cached_after_error": Msg(
        fr="LCR non téléchargée ({why}) : la copie locale est utilisée : {url}",
        en="CRL not downloaded ({why}): the local copy is used: {url}",
    ),
    "revocation.crl_failed": Msg(
        fr="LCR non obtenue ({why}) : {url}", en="CRL not obtained ({why}): {url}"
    ),
    "revocation.crl_rejected": Msg(
        fr="LCR refusée ({why}) : {url}", en="CRL refused ({why}): {url}"
    ),
    "revocation.crl_ldap_ignored": Msg(
        fr="point de distribution LDAP ignoré (seul HTTP est interrogé) : {url}",
        en="LDAP distribution point ignored (only HTTP is fetched): {url}",
    ),
    # one OCSP answer ({serial}: the certificate serial number in hex)
    "revocation.ocsp_good": Msg(
        fr="OCSP : le certificat {serial} n'est pas révoqué",
        en="OCSP: certificate {serial} is not revoked",
    ),
    "revocation.ocsp_revoked": Msg(
        fr="OCSP : le certificat {serial} est révoqué depuis le {date} (motif : {reason})",
        en="OCSP: certificate {serial} was revoked on {date} (reason: {reason})",
    ),
    "revocation.ocsp_unknown": Msg(
        fr="OCSP : le répondeur ne connaît pas le certificat {serial}",
        en="OCSP: the responder does not know certificate {serial}",
    ),
    "revocation.ocsp_unavailable": Msg(
        fr="OCSP : pas de réponse fiable pour le certificat {serial} ({why})",
        en="OCSP: no trustworthy answer for certificate {serial} ({why})",
    ),
    "revocation.soft_failed": Msg(
        fr="accepté sans statut de révocation (mode tolérant, « soft-fail »)",
        en="accepted without a revocation status (soft-fail mode)",
    ),
    # cps validate --fetch
    "revocation.cli_summary": Msg(
        fr="révocation ({mode}) : {downloaded} LCR téléchargée(s), {cached} depuis le cache, "
        "{failed} en échec ; {ocsp} réponse(s) OCSP ; {soft} certificat(s) acceptés sans statut",
        en="revocation ({mode}): {downloaded} CRL(s) downloaded, {cached} from the cache, "
        "{failed} failed; {ocsp} OCSP answer(s); {soft} certificate(s) accepted without a status",
    ),
    "revocation.mode_hard": Msg(fr="mode strict", en="hard-fail"),
    "revocation.mode_soft": Msg(fr="mode tolérant", en="soft-fail"),
    # revocation reasons (RFC 5280 CRLReason, as in Revocation.reason)
    "revocation.reason_unspecified": Msg(fr="non précisé", en="unspecified"),
    "revocation.reason_key_compromise": Msg(fr="compromission de la clé", en="key compromise"),
    "revocation.reason_ca_compromise": Msg(
        fr="compromission de l'autorité", en="CA compromise"
    ),
    "revocation.reason_affiliation_changed": Msg(
        fr="changement d'affiliation", en="affiliation changed"
    ),
    "revocation.reason_superseded": Msg(fr="remplacé", en="superseded"),
    "revocation.reason_cessation_of_operation": Msg(
        fr="cessation d'activité", en="cessation of operation"
    ),
    "revocation.reason_certificate_hold": Msg(fr="suspendu", en="certificate on hold"),
    "revocation.reason_remove_from_crl": Msg(fr="retiré de la LCR", en="removed from the CRL"),
    "revocation.reason_privilege_withdrawn": Msg(
        fr="privilège retiré", en="privilege withdrawn"
    ),
    "revocation.reason_aa_compromise": Msg(
        fr="compromission de l'autorité d'attributs", en="attribute authority compromise"
    ),
    # why a source could not be used (code_name / OcspResult.why, lower-case)
    "revocation.why_timeout": Msg(fr="délai dépassé", en="timed out"),
    "revocation.why_too_large": Msg(fr="réponse trop volumineuse", en="response too large"),
    "revocation.why_network": Msg(
        fr="serveur injoignable ou connexion coupée",
        en="server unreachable or connection dropped",
    ),
    "revocation.why_http_status": Msg(
        fr="le serveur a répondu par une erreur HTTP", en="the server answered with an HTTP error"
    ),
    "revocation.why_bad_url": Msg(
        fr="adresse non prise en charge (http:// ou https:// seulement)",
        en="unsupported address (http:// or https:// only)",
    ),
    "revocation.why_too_many_redirects": Msg(fr="trop de redirections", en="too many redirects"),
    "revocation.why_malformed": Msg(fr="réponse illisible", en="unreadable response"),
    "revocation.why_responder_error": Msg(
        fr="le répondeur OCSP a signalé une erreur", en="the OCSP responder reported an error"
    ),
    "revocation.why_bad_signature": Msg(
        fr="signature invalide", en="invalid signature"
    ),
    "revocation.why_unauthorized_responder": Msg(
        fr="réponse signée par un répondeur que l'AC n'a pas autorisé",
        en="answer signed by a responder the CA did not authorise",
    ),
    "revocation.why_nonce_mismatch": Msg(
        fr="la réponse correspond à une autre requête (nonce différent)",
        en="the answer belongs to another request (nonce mismatch)",
    ),
    "revocation.why_nonce_missing": Msg(
        fr="la réponse ne reprend pas le nonce de la requête",
        en="the answer does not echo the request's nonce",
    ),
    "revocation.why_certid_mismatch": Msg(
        fr="la réponse porte sur un autre certificat", en="the answer is about another certificate"
    ),
    "revocation.why_stale": Msg(fr="information périmée", en="out-of-date information"),
    "revocation.why_not_yet_valid": Msg(
        fr="information datée du futur (horloge ?)", en="information dated in the future (clock?)"
    ),
    "revocation.why_not_configured": Msg(
        fr="aucun répondeur OCSP configuré", en="no OCSP responder configured"
    ),
    "revocation.why_unreadable": Msg(fr="LCR illisible", en="unreadable CRL"),
    "revocation.why_wrong_issuer": Msg(
        fr="LCR émise par une autre autorité", en="CRL issued by another authority"
    ),
    "revocation.why_issuer_not_crl_signer": Msg(
        fr="l'autorité n'a pas le droit de signer des LCR", en="the authority may not sign CRLs"
    ),
    "revocation.why_unhandled_critical": Msg(
        fr="extension critique inconnue", en="unknown critical extension"
    ),
    "revocation.why_delta": Msg(
        fr="LCR delta au lieu d'une LCR complète", en="delta CRL instead of a complete CRL"
    ),
    "revocation.why_indirect": Msg(
        fr="LCR indirecte (non prise en charge)", en="indirect CRL (not supported)"
    ),
    "revocation.why_partial": Msg(
        fr="LCR limitée à certains motifs de révocation",
        en="CRL limited to some revocation reasons",
    ),
    "revocation.why_out_of_scope": Msg(
        fr="LCR d'un autre périmètre (point de distribution)",
        en="CRL of another scope (distribution point)",
    ),
    "revocation.why_rollback": Msg(
        fr="LCR plus ancienne que celle déjà connue", en="CRL older than the one already known"
    ),
    "revocation.why_other": Msg(fr="erreur", en="error"),
}
