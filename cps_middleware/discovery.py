"""``discover()``: every card present, one entry per physical card (PC/SC + PKCS#11).

PC/SC says which readers hold a card and what the ATR says (generation,
interface, exclusive use). When a PKCS#11 module is available, its tokens are
matched to readers by slot description (PKCS#11 modules such as OpenSC and
the ANS middleware name the slot after the PC/SC reader), so a card shows once
with its token and holder rather than as two views. Tokens without a PC/SC
reader (a SoftHSM-backed test card) are listed too, with ``reader=None``.

Per-card PKCS#11 trouble is a field (``pkcs11_error``), not an exception:
discovery is also what a diagnostic runs on a broken workstation.
"""

from __future__ import annotations

from dataclasses import dataclass

from cps_middleware.cards.atr import AtrIdentification, CardGeneration, CardInterface
from cps_middleware.cards.identity import Practitioner, practitioner_from_certificate
from cps_middleware.errors import CpsError, NoReaders
from cps_middleware.pcsc.context import PcscContext
from cps_middleware.pcsc.readers import ReaderInfo, list_readers
from cps_middleware.pkcs11 import Module, TokenInfo, load_module

__all__ = ["DiscoveredCard", "discover", "match_reader"]

_AUTH_LABEL = "Certificat d'Authentification CPS"


@dataclass(frozen=True)
class DiscoveredCard:
    """One card: where it is, what its ATR says, and what the PKCS#11 module sees."""

    reader: str | None
    atr: bytes | None
    generation: CardGeneration | None  #: ``None`` when only PKCS#11 saw the card
    interface: CardInterface
    identification: AtrIdentification | None
    exclusive: bool  #: another program holds the card exclusively
    token: TokenInfo | None = None
    holder: Practitioner | None = None
    pkcs11_module: str | None = None
    pkcs11_error: str | None = None  #: why no token / holder could be read, if so

    @property
    def is_cps(self) -> bool:
        if self.generation is not None:
            return self.generation.is_cps
        return bool(self.token is not None and self.token.is_cps)

    @property
    def atr_hex(self) -> str | None:
        return self.atr.hex(" ").upper() if self.atr else None


def match_reader(slot_description: str, reader_names: list[str]) -> str | None:
    """The PC/SC reader a PKCS#11 slot stands for: exact name first, then the
    longest reader name the slot description starts with (some modules append
    a slot number or pad with spaces)."""
    desc = slot_description.strip()
    if desc in reader_names:
        return desc
    prefixed = [r for r in reader_names if desc.startswith(r)]
    return max(prefixed, key=len) if prefixed else None


def _holder(module: Module, token: TokenInfo) -> Practitioner | None:
    # A Token whose card was pulled and put back since re-opens its session by
    # itself (cps_middleware.pkcs11): reading public certificates needs no retry here.
    certs = module.open_token(slot_id=token.slot_id).certificates()
    preferred = [c for c in certs if c.label == _AUTH_LABEL] or certs
    for cert in preferred:
        return practitioner_from_certificate(cert.der, label=cert.label)
    return None


def discover(
    *,
    pkcs11: bool = True,
    module_path: str | None = None,
    holder: bool = True,
    context: PcscContext | None = None,
) -> list[DiscoveredCard]:
    """Every card present, PC/SC and PKCS#11 views merged (see the module doc).

    ``pkcs11=False`` skips the PKCS#11 module (PC/SC only, no card I/O);
    ``holder=False`` skips reading certificates. Raises
    :class:`~cps_middleware.errors.PcscServiceUnavailable` when pcscd is not
    running and there is no PKCS#11 token either; an absence of readers is an
    empty list.
    """
    readers: list[ReaderInfo]
    pcsc_error: CpsError | None = None
    try:
        readers = list_readers(context, allow_empty=True)
    except NoReaders:
        readers = []
    except CpsError as exc:
        if not pkcs11:
            raise
        readers, pcsc_error = [], exc
    cards = [r for r in readers if r.card_present and r.atr]
    by_reader: dict[str, DiscoveredCard] = {
        r.name: DiscoveredCard(
            reader=r.name,
            atr=r.atr,
            generation=r.generation,
            interface=r.identification.interface if r.identification else CardInterface.UNKNOWN,
            identification=r.identification,
            exclusive=r.exclusive,
        )
        for r in cards
    }
    extra: list[DiscoveredCard] = []
    if pkcs11:
        try:
            module = load_module(module_path)
            tokens = module.tokens()
        except CpsError as exc:
            if pcsc_error is not None:
                raise pcsc_error from exc
            why = str(exc)
            return [_with(c, pkcs11_error=why) for c in by_reader.values()]
        if pcsc_error is not None and not tokens:
            raise pcsc_error
        names = [r.name for r in readers]
        for token in tokens:
            who: Practitioner | None = None
            error: str | None = None
            if holder:
                try:
                    who = _holder(module, token)
                except CpsError as exc:
                    error = str(exc)
            reader = match_reader(token.slot_description, names)
            if reader is not None and reader in by_reader:
                by_reader[reader] = _with(
                    by_reader[reader], token=token, holder=who,
                    pkcs11_module=module.resolved_path, pkcs11_error=error,
                )
            else:
                extra.append(
                    DiscoveredCard(
                        reader=reader, atr=None, generation=_generation(token.generation),
                        interface=CardInterface.UNKNOWN, identification=None, exclusive=False,
                        token=token, holder=who, pkcs11_module=module.resolved_path,
                        pkcs11_error=error,
                    )
                )
        for name, card in by_reader.items():
            if card.token is None and card.pkcs11_error is None:
                by_reader[name] = _with(
                    card, pkcs11_module=module.resolved_path,
                    pkcs11_error="the PKCS#11 module shows no token for this reader",
                )
    return list(by_reader.values()) + extra


def _generation(name: str | None) -> CardGeneration | None:
    """What the token's model says (``"CPS3"``), as the ATR would; ``None`` when it does not."""
    from cps_middleware.card import _generation as generation

    return generation(name)


def _with(card: DiscoveredCard, **changes: object) -> DiscoveredCard:
    from dataclasses import replace

    return replace(card, **changes)  # type: ignore[arg-type]
