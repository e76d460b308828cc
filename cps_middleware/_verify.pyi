"""Types of the native batch signature verifier (native/verify/verify.c)."""

from collections.abc import Sequence

class Key:
    """An issuer public key decoded once, for one signature scheme.

    ``scheme``: ``rsa-pkcs1-sha256|384|512``, ``rsa-pss-sha256:<salt>`` (sha384,
    sha512), ``ecdsa-sha256|384|512``, ``ed25519``, ``ed448``. ValueError when the
    key does not parse or does not fit the scheme.
    """

    def __init__(self, spki: bytes, scheme: str) -> None: ...
    @property
    def bits(self) -> int: ...
    @property
    def scheme(self) -> str: ...
    def verify(self, signature: bytes, data: bytes) -> bool: ...

class Pending:
    """A batch verified by native threads since :func:`start_many` (no GIL needed)."""

    def result(self) -> bytes:
        """The verdicts as :func:`verify_many` gives them; this thread helps with the rest."""

def start_many(
    keys: Sequence[Key | None],
    signatures: Sequence[bytes],
    data: Sequence[bytes],
    threads: int = 1,
) -> Pending: ...
def verify_many(
    keys: Sequence[Key | None],
    signatures: Sequence[bytes],
    data: Sequence[bytes],
    threads: int = 0,
) -> bytes: ...
def openssl_version() -> str: ...
def parse_certificate(der: bytes) -> tuple[object, ...] | str: ...
def check_name(name: bytes) -> str | None: ...
def set_der_tables(kinds: dict[bytes, int], parsed: frozenset[bytes]) -> None: ...
