"""A real OpenID provider configured like Pro Santé Connect, run locally for tests.

:class:`PscTestProvider` starts ``node oidc/server.mjs`` (panva's
``oidc-provider``, installed by ``scripts/bootstrap.sh`` with ``npm ci`` from
the lock file beside it) on 127.0.0.1 with an ephemeral port, and stops it by
PID. The provider terminates TLS itself with a ``localhost`` server
certificate (:class:`~cps_middleware.testing.servers.ServerPki`), asks for a
client certificate, trusts the test PKI's organisation CA (with its CRL) and
knows three organisation certificates:

* ``organisation`` — registered (``tls_client_auth`` by subject DN) as ``client_id``
  and as ``<client_id>-jwt`` (signed userinfo): the good one;
* ``revoked_organisation`` — registered too (``<client_id>-revoked``), but in the CRL;
* ``stranger_organisation`` — valid, but its DN maps to no client.

Its accounts are practitioners (claims shaped like PSC's: ``SubjectNameID``
is the national identifier); the CIBA "phone" is a test approver that
:meth:`PscTestProvider.approver` tells to approve, deny, stay pending or
expect slower polling.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from cps_middleware.errors import TestCardError
from cps_middleware.testing.pki import OrganisationCertificate, TestHolder, TestPki
from cps_middleware.testing.servers import ServerPki, stop_process

__all__ = [
    "OIDC_DIR",
    "REALM_PATH",
    "ApproverAction",
    "PscTestProvider",
    "psc_claims",
]

OIDC_DIR = Path(__file__).with_name("oidc")
REALM_PATH = "/auth/realms/esante-wallet"
CLIENT_ID = "cps-middleware-proxy-lps"
ApproverAction = Literal["approve", "deny", "pending", "slow"]
_PEM = serialization.Encoding.PEM


def psc_claims(holder: TestHolder, *, organisation: str = "CABINET DE TEST") -> dict[str, Any]:
    """The claims PSC gives for *holder* (``SubjectNameID``, ``SubjectRefPro`` ...).

    Names and shape as ANS documents them for the PSC userinfo; values from the
    test holder.
    """
    return {
        "SubjectNameID": holder.ps_idnat,
        "preferred_username": holder.ps_idnat,
        "given_name": holder.given_name,
        "family_name": holder.surname,
        "SubjectOrganization": organisation,
        "SubjectRefPro": {
            "codeCivilite": "",
            "exercices": [
                {
                    "codeProfession": str(holder.profession_code),
                    "codeCategorieProfessionnelle": "C",
                    "nomDexercice": holder.surname,
                    "prenomDexercice": holder.given_name,
                    "activities": [],
                }
            ],
        },
    }


def _subject_dn(certificate: x509.Certificate) -> str:
    """RFC 4514 subject DN with the short names the provider's TLS stack prints."""
    return certificate.subject.rfc4514_string(
        {NameOID.GIVEN_NAME: "GN", NameOID.SURNAME: "SN", NameOID.TITLE: "title"}
    )


def _pem(cert: Any) -> str:
    return str(cert.public_bytes(_PEM).decode("ascii"))


@dataclass
class PscTestProvider:
    """See the module docstring. Use as a context manager or ``start()`` / ``stop()``."""

    __test__ = False

    pki: TestPki
    server_pki: ServerPki = field(default_factory=ServerPki)
    holders: tuple[TestHolder, ...] = (TestHolder(),)
    ciba_interval: int = 1
    access_token_ttl: int = 300
    exchange_scopes: tuple[str, ...] = ("dmp:read", "dmp:write")
    exchange_audiences: tuple[str, ...] = ("https://api.dmp.test",)
    startup_timeout: float = 20.0
    client_id: str = CLIENT_ID
    organisation: OrganisationCertificate = field(init=False)
    revoked_organisation: OrganisationCertificate = field(init=False)
    stranger_organisation: OrganisationCertificate = field(init=False)
    issuer: str = field(init=False, default="")
    port: int = field(init=False, default=0)
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _dir: Path | None = field(init=False, default=None)
    _keys: list[RSAKey] = field(init=False, default_factory=list)
    _stderr: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.organisation = self.pki.issue_organisation(service="PROXY LPS TEST", key_type="p256")
        self.revoked_organisation = self.pki.issue_organisation(
            service="PROXY LPS REVOKED", key_type="p256"
        )
        self.stranger_organisation = self.pki.issue_organisation(
            service="PROXY LPS UNKNOWN", key_type="p256"
        )
        revoked = self.revoked_organisation.certificate
        if self.pki.crl("organisations").get_revoked_certificate_by_serial_number(
            revoked.serial_number
        ) is None:
            self.pki.revoke(revoked)

    # -- what clients need -----------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        """PSC's discovery location: ``<issuer>/.well-known/wallet-openid-configuration``."""
        return self.issuer + "/.well-known/wallet-openid-configuration"

    @property
    def ca_pem(self) -> bytes:
        """The CA that issued the provider's TLS server certificate (trust it to connect)."""
        return self.server_pki.ca_certificate.public_bytes(_PEM)

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        return {h.ps_idnat: psc_claims(h) for h in self.holders}

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start the provider (Node, oidc-provider); returns it once it answers."""
        node = shutil.which("node")
        if node is None:
            raise TestCardError(
                "node is not installed", hint="install Node.js 20+ (scripts/bootstrap.sh does)"
            )
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise TestCardError(
                "the test OpenID provider's packages are missing",
                hint=f"run: npm ci --prefix {OIDC_DIR} (scripts/bootstrap.sh does)",
            )
        self._dir = Path(tempfile.mkdtemp(prefix="cps-psc-op-"))
        self._keys = [RSAKey.generate_key(2048, {"kid": "psc-key-1", "use": "sig", "alg": "RS256"})]
        config_path = self._dir / "config.json"
        config_path.write_text(json.dumps(self._config()), encoding="utf-8")
        config_path.chmod(0o600)
        self._process = subprocess.Popen(
            [node, str(OIDC_DIR / "server.mjs"), str(config_path)],
            cwd=OIDC_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NODE_ENV": "test"},
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = self._read_ready_line()
        info = json.loads(line)
        self.port, self.issuer = int(info["port"]), str(info["issuer"])
        return self

    def _read_ready_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(
            target=lambda: result.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.startup_timeout)
        if not result or not result[0].strip():
            self.stop()
            raise TestCardError(
                "the test OpenID provider did not start",
                hint="its stderr said: " + "".join(self._stderr[-20:])[-2000:],
            )
        return result[0].decode()

    def _drain_stderr(self) -> None:
        process = self._process
        if process is None or process.stderr is None:
            return
        for raw in process.stderr:
            self._stderr.append(raw.decode(errors="replace"))

    def stop(self) -> None:
        """Stop the provider process by PID."""
        process, self._process = self._process, None
        stop_process(process, close_pipes=False)  # _drain_stderr reads to EOF
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    # -- test controls -------------------------------------------------------------

    def approver(
        self, login_hint: str, action: ApproverAction = "approve", *, delay_ms: int = 300
    ) -> None:
        """How the test approver (the phone / card) answers requests for *login_hint*."""
        self._admin("/__test__/approver",
                    {"login_hint": login_hint, "action": action, "delay_ms": delay_ms})

    def reset_approver(self) -> None:
        """Forget the test's approval rule (the practitioner's answers)."""
        self._admin("/__test__/approver", {"reset": True})

    def register_client(self, client_id: str, certificate: x509.Certificate) -> None:
        """Register one more ``tls_client_auth`` client whose subject DN is *certificate*'s
        (any certificate the provider trusts: an organisation one, or a card's)."""
        subject = _subject_dn(certificate)
        self._admin("/__test__/clients", {"client": self._client_for(subject, client_id)})

    def rotate_keys(self) -> str:
        """Add a new signing key in front of the old ones; returns its kid."""
        kid = f"psc-key-{len(self._keys) + 1}"
        key = RSAKey.generate_key(2048, {"kid": kid, "use": "sig", "alg": "RS256"})
        self._keys.insert(0, key)
        self._admin("/__test__/rotate", {"jwk": key.as_dict(private=True)})
        return kid

    def signing_key(self) -> RSAKey:
        """The provider's current signing key (tests forge tokens with a different one)."""
        return self._keys[0]

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        with httpx.Client(verify=self._verify_context(), timeout=10) as client:
            client.post(f"https://127.0.0.1:{self.port}{path}", json=body).raise_for_status()

    def _verify_context(self) -> Any:
        import ssl

        ctx = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        return ctx

    # -- configuration -------------------------------------------------------------

    def _client(self, org: OrganisationCertificate, client_id: str,
                **extra: Any) -> dict[str, Any]:
        return self._client_for(_subject_dn(org.certificate), client_id, **extra)

    def _client_for(self, subject_dn: str, client_id: str, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "client_id": client_id,
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": subject_dn,
            "tls_client_certificate_bound_access_tokens": True,
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:openid:params:grant-type:ciba",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
            "response_types": ["code"],
            "redirect_uris": ["https://app.example.test/callback"],
            "post_logout_redirect_uris": ["https://app.example.test/logged-out"],
            "backchannel_token_delivery_mode": "poll",
            "scope": "openid offline_access scope_all profile rpps identity email",
        }

    def _config(self) -> dict[str, Any]:
        server_chain = [self.server_pki.certificate]
        if self.server_pki.intermediate_certificate is not None:
            server_chain.append(self.server_pki.intermediate_certificate)
        org_ca = self.pki.organisation_ca.certificate
        return {
            "host": "127.0.0.1",
            "port": 0,
            "issuer_path": REALM_PATH,
            "tls": {
                "key": self.server_pki.key.private_bytes(
                    _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode("ascii"),
                "cert": "".join(_pem(c) for c in server_chain),
                "client_cas": [_pem(self.pki.root.certificate), _pem(org_ca)],
                # OpenSSL checks the CRL of every CA of the chain: the card CA's too
                # (a card can authenticate a test client as well as an HSM).
                "crls": [
                    self.pki.crl("root").public_bytes(_PEM).decode("ascii"),
                    self.pki.crl("intermediate").public_bytes(_PEM).decode("ascii"),
                    self.pki.crl("organisations").public_bytes(_PEM).decode("ascii"),
                ],
            },
            "jwks": {"keys": [k.as_dict(private=True) for k in self._keys]},
            "clients": [
                self._client(self.organisation, self.client_id),
                self._client(self.organisation, self.client_id + "-jwt",
                             userinfo_signed_response_alg="RS256"),
                self._client(self.revoked_organisation, self.client_id + "-revoked"),
            ],
            "accounts": self.accounts,
            "default_account": self.holders[0].ps_idnat,
            "default_policy": {"action": "approve", "delay_ms": 300},
            "ciba_interval": self.ciba_interval,
            "access_token_ttl": self.access_token_ttl,
            "exchange_scopes": list(self.exchange_scopes),
            "exchange_audiences": list(self.exchange_audiences),
        }

    def wait_until_stopped(self, timeout: float = 5.0) -> bool:
        """For tests of the life cycle: whether the process is gone within *timeout*."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return True
            time.sleep(0.05)
        return False
