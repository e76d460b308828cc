"""ATRs: parse an Answer-To-Reset and tell which CPS generation (if any) sent it.

Pure logic, no I/O. :data:`ATR_TABLE` holds the ATRs the ANS middleware
matches (DOMAIN.md) as data: an entry is an ATR, an optional mask, the
generation, the interface and whether the fact is confirmed. Correct the table,
not the code, when a new card shows up.

:func:`parse_atr` follows ISO/IEC 7816-3 (TS, T0, TA/TB/TC/TD groups,
historical bytes, TCK). A malformed ATR (truncated, extra bytes, wrong TCK) is
reported in :attr:`ParsedAtr.problems` and as an :class:`AtrWarning`, never as
an exception: a card with an odd ATR is still a card the user wants diagnosed.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass, field
from functools import reduce

from cps_middleware.errors import InvalidInput

__all__ = [
    "ANS_ISSUER_ID",
    "ATR_TABLE",
    "CPS3_IAS_AID",
    "CPS4_CHIPDOC_AID",
    "CPS4_CPS2TER_AID",
    "GENERATION_PROBES",
    "AtrIdentification",
    "AtrPattern",
    "AtrWarning",
    "CardGeneration",
    "CardInterface",
    "GenerationProbe",
    "InterfaceGroup",
    "ParsedAtr",
    "identify_atr",
    "parse_atr",
    "serial_from_ef_sn",
]


class AtrWarning(UserWarning):
    """An ATR does not follow ISO/IEC 7816-3 (wrong TCK, truncated ...); it was still read."""


class CardGeneration(enum.Enum):
    """Which CPS a card is; ``NOT_CPS`` for any other card."""

    CPS2TER = "CPS2ter"
    CPS3 = "CPS3"
    CPS4 = "CPS4"
    CPS_UNKNOWN_GENERATION = "CPS (generation unknown)"
    NOT_CPS = "not a CPS"

    @property
    def is_cps(self) -> bool:
        return self is not CardGeneration.NOT_CPS


class CardInterface(enum.Enum):
    CONTACT = "contact"
    CONTACTLESS = "contactless"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AtrPattern:
    """One ATR the middleware recognises. ``mask`` bits set to 1 must match ``atr``."""

    name: str
    atr: bytes
    generation: CardGeneration
    interface: CardInterface
    mask: bytes | None = None
    confirmed: bool = True

    def __post_init__(self) -> None:
        if self.mask is not None and len(self.mask) != len(self.atr):
            raise InvalidInput(f"ATR pattern {self.name!r}: mask and ATR lengths differ")

    def matches(self, atr: bytes) -> bool:
        if len(atr) != len(self.atr):
            return False
        if self.mask is None:
            return atr == self.atr
        return all((a & m) == (p & m) for a, p, m in zip(atr, self.atr, self.mask, strict=True))

    @property
    def specificity(self) -> int:
        """Number of bits the pattern fixes: the most specific match wins."""
        if self.mask is None:
            return 8 * len(self.atr)
        return sum(bin(m).count("1") for m in self.mask)


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


_G = CardGeneration
_I = CardInterface

#: The ATRs of DOMAIN.md. "Sesam Vitale card CPS" also fits the CPS3 mask; as an
#: exact match it is more specific and wins, with its generation left unknown.
ATR_TABLE: tuple[AtrPattern, ...] = (
    AtrPattern(
        "CPS3 contact",
        _h("3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"),
        _G.CPS3,
        _I.CONTACT,
        mask=_h("FF 00 00 00 00 FF FF FF FF FF FF 00 00 00 FF FF FF"),
    ),
    AtrPattern(
        "CPS3 contactless",
        _h("3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E"),
        _G.CPS3,
        _I.CONTACTLESS,
        mask=_h("FF FF FF FF FF FF FF FF 00 00 FF C0 FF FF FF FF FF FF FF FF"),
    ),
    AtrPattern(
        "CPS4",
        _h("3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44"),
        _G.CPS4,
        _I.CONTACT,
    ),
    AtrPattern(
        "CPS4 (pre-series)",
        _h("3B 9B 18 80 01 00 12 25 00 64 80 00 04 01 00 90 44"),
        _G.CPS4,
        _I.CONTACT,
    ),
    AtrPattern(
        "CPS4 (T=0 only)",
        _h("3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00"),
        _G.CPS4,
        _I.CONTACT,
    ),
    AtrPattern(
        "Sesam Vitale card CPS",
        _h("3B AC 00 40 2A 00 12 25 00 64 80 82 02 12 00 90 00"),
        _G.CPS_UNKNOWN_GENERATION,
        _I.CONTACT,
        confirmed=False,
    ),
)


@dataclass(frozen=True)
class InterfaceGroup:
    """Interface bytes TAi, TBi, TCi, TDi of group ``index`` (1-based); ``None`` when absent."""

    index: int
    ta: int | None = None
    tb: int | None = None
    tc: int | None = None
    td: int | None = None

    @property
    def protocol(self) -> int | None:
        """The protocol T announced by TDi (``None`` without TDi)."""
        return None if self.td is None else self.td & 0x0F


@dataclass(frozen=True)
class ParsedAtr:
    """An ATR split into its ISO/IEC 7816-3 parts; ``problems`` lists what is wrong with it."""

    raw: bytes
    ts: int | None
    t0: int | None
    groups: tuple[InterfaceGroup, ...]
    historical: bytes
    tck: int | None
    problems: tuple[str, ...] = field(default=())
    tck_expected: int | None = None  #: XOR of T0 .. the byte before TCK

    @property
    def convention(self) -> str:
        return {0x3B: "direct", 0x3F: "inverse"}.get(self.ts or -1, "invalid")

    @property
    def protocols(self) -> tuple[int, ...]:
        """Protocols offered (T=0 when no TD byte says otherwise), in ATR order, once each."""
        seen: list[int] = []
        for g in self.groups:
            if g.protocol is not None and g.protocol != 15 and g.protocol not in seen:
                seen.append(g.protocol)
        return tuple(seen) or (0,)

    @property
    def tck_required(self) -> bool:
        """ISO/IEC 7816-3: TCK is present iff a TD byte announces a protocol other than T=0."""
        return _needs_tck(self.groups)

    @property
    def tck_valid(self) -> bool | None:
        """``None`` when the ATR has no TCK, else whether T0..TCK XOR to zero."""
        if self.tck is None:
            return None
        return self.tck == self.tck_expected

    @property
    def well_formed(self) -> bool:
        return not self.problems


def _ensure_bytes(atr: bytes | bytearray | list[int] | str) -> bytes:
    if isinstance(atr, str):
        try:
            return bytes.fromhex(atr.replace(":", " "))
        except ValueError as exc:
            raise InvalidInput(f"not a hexadecimal ATR: {atr!r}") from exc
    if isinstance(atr, bytes | bytearray):
        return bytes(atr)
    try:
        return bytes(atr)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"not an ATR: {atr!r}") from exc


def parse_atr(atr: bytes | bytearray | list[int] | str, *, warn: bool = True) -> ParsedAtr:
    """Split ``atr`` into its parts. Never raises for a malformed ATR (see ``problems``).

    ``atr`` may be bytes, a list of ints (pyscard's form) or hex text. With
    ``warn`` each problem is also emitted as an :class:`AtrWarning`.
    """
    raw = _ensure_bytes(atr)
    problems: list[str] = []
    groups: list[InterfaceGroup] = []
    historical = b""
    tck: int | None = None
    tck_expected: int | None = None
    ts = raw[0] if raw else None
    t0 = raw[1] if len(raw) > 1 else None
    if ts is None or t0 is None:
        problems.append("ATR shorter than 2 bytes (TS and T0)")
    else:
        if ts not in (0x3B, 0x3F):
            problems.append(f"TS is {ts:02X}, expected 3B (direct) or 3F (inverse)")
        pos = 2
        y = t0 >> 4
        index = 1
        truncated = False
        while True:
            values: dict[str, int | None] = {"ta": None, "tb": None, "tc": None, "td": None}
            for bit, name in ((1, "ta"), (2, "tb"), (4, "tc"), (8, "td")):
                if y & bit:
                    if pos >= len(raw):
                        truncated = True
                        break
                    values[name] = raw[pos]
                    pos += 1
            group = InterfaceGroup(index, **values)
            if any(v is not None for v in values.values()):
                groups.append(group)
            if truncated or group.td is None:
                break
            y = group.td >> 4
            index += 1
        k = t0 & 0x0F
        if truncated:
            problems.append(f"ATR truncated in interface bytes of group {index}")
        else:
            historical = raw[pos : pos + k]
            pos += len(historical)
            if len(historical) < k:
                problems.append(
                    f"ATR truncated: {k} historical bytes announced, {len(historical)} present"
                )
        if not truncated and len(historical) == k:
            rest = raw[pos:]
            expected = _xor(raw[1:pos])
            if _needs_tck(groups):
                if not rest:
                    problems.append(
                        "TCK missing (required when a protocol other than T=0 is offered)"
                    )
                else:
                    tck, tck_expected = rest[0], expected
                    if tck != expected:
                        problems.append(f"wrong TCK {tck:02X}, expected {expected:02X}")
                    if len(rest) > 1:
                        problems.append(f"{len(rest) - 1} extra byte(s) after TCK")
            elif rest:
                # No TCK is expected with T=0 only, but some cards send one: accept it
                # when it checks out, otherwise the bytes are just extra.
                if len(rest) == 1 and rest[0] == expected:
                    tck, tck_expected = rest[0], expected
                else:
                    problems.append(f"{len(rest)} extra byte(s) after the historical bytes")
    result = ParsedAtr(raw, ts, t0, tuple(groups), historical, tck, tuple(problems), tck_expected)
    if warn:
        for problem in problems:
            warnings.warn(f"ATR {raw.hex(' ').upper()}: {problem}", AtrWarning, stacklevel=2)
    return result


def _needs_tck(groups: list[InterfaceGroup] | tuple[InterfaceGroup, ...]) -> bool:
    return any(g.protocol not in (None, 0) for g in groups)


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


@dataclass(frozen=True)
class AtrIdentification:
    """What an ATR says about the card: generation, interface and the table entry matched."""

    atr: bytes
    generation: CardGeneration
    interface: CardInterface
    pattern: AtrPattern | None
    parsed: ParsedAtr

    @property
    def is_cps(self) -> bool:
        return self.generation.is_cps

    @property
    def name(self) -> str:
        return self.pattern.name if self.pattern else "not a CPS"

    @property
    def atr_hex(self) -> str:
        return self.atr.hex(" ").upper()


def _looks_contactless(parsed: ParsedAtr) -> bool:
    # PC/SC part 3: a contactless reader builds "3B 8n 80 01 ..." (TD1=80, TD2=01, no TA/TB/TC).
    g = parsed.groups
    return (
        parsed.ts == 0x3B
        and len(g) >= 2
        and g[0].td == 0x80
        and g[1].td == 0x01
        and all(x.ta is None and x.tb is None and x.tc is None for x in g[:2])
    )


def identify_atr(
    atr: bytes | bytearray | list[int] | str,
    *,
    table: tuple[AtrPattern, ...] = ATR_TABLE,
    warn: bool = False,
) -> AtrIdentification:
    """Identify a card from its ATR; the most specific matching table entry wins.

    Any ATR is accepted: one that matches no entry is ``NOT_CPS`` (its interface
    guessed from the PC/SC contactless pseudo-ATR shape).
    """
    parsed = parse_atr(atr, warn=warn)
    matches = [p for p in table if p.matches(parsed.raw)]
    if matches:
        best = max(matches, key=lambda p: p.specificity)
        return AtrIdentification(parsed.raw, best.generation, best.interface, best, parsed)
    interface = CardInterface.CONTACTLESS if _looks_contactless(parsed) else CardInterface.UNKNOWN
    return AtrIdentification(parsed.raw, CardGeneration.NOT_CPS, interface, None, parsed)


# --- what the ANS driver sends to recognise a card (card-cps.c, card-cps4.c) ------------

#: ANS's issuer id: EF.SN.ICC (``3F00/D003``, 12 bytes) is ``5A 0A`` + this + 5 BCD bytes.
ANS_ISSUER_ID = _h("80 25 00 00 01")
CPS3_IAS_AID = _h("E8 28 BD 08 0F 80 25 00 00 01 FF 00 10")
CPS4_CHIPDOC_AID = _h("80 25 00 00 01 FF 01 00")
CPS4_CPS2TER_AID = _h("80 25 00 00 01 FF 00 02")


@dataclass(frozen=True)
class GenerationProbe:
    """APDUs that recognise a generation without its ATR (a reader that alters the
    ATR, a new card series): SELECT the applet, then read EF.SN.ICC and check the
    issuer id. ``pin_select`` + ``pin_status`` ask the holder PIN's tries left
    without a PIN (VERIFY without data: ``63 Cx`` / ``69 83``, no try spent).
    """

    generation: CardGeneration
    select_applet: bytes
    read_serial: tuple[bytes, ...]  #: the last one returns EF.SN.ICC's 12 bytes
    pin_select: bytes | None
    pin_status: bytes


#: CPS4 first, as the ANS module tries it: every APDU on logical channel 1 (CLA 01)
#: once the ChipDoc applet is selected there (no MANAGE CHANNEL). The PIN
#: reference ``01`` comes from the card's PKCS#15 AODF (uncertain on real cards:
#: the driver reads it there, hard-wiring only a maximum of 3 tries).
GENERATION_PROBES: tuple[GenerationProbe, ...] = (
    GenerationProbe(
        CardGeneration.CPS4,
        select_applet=_h("01 A4 04 0C 08") + CPS4_CHIPDOC_AID,
        read_serial=(_h("01 A4 08 0C 02 D0 03"), _h("01 B0 00 00 0C")),
        pin_select=_h("01 A4 04 0C 08") + CPS4_CHIPDOC_AID,
        pin_status=_h("01 20 00 01"),
    ),
    GenerationProbe(
        CardGeneration.CPS3,
        select_applet=_h("00 A4 04 0C 0D") + CPS3_IAS_AID,
        read_serial=(_h("00 B0 9C 00 0C"),),  # by SFI 1C, as OpenSC reads it
        pin_select=_h("00 A4 00 0C 02 3F 00"),
        pin_status=_h("00 20 00 01"),
    ),
)


def serial_from_ef_sn(data: bytes) -> str | None:
    """The card serial (10 digits) from EF.SN.ICC, or None when it is not ANS's."""
    prefix = b"\x5a\x0a" + ANS_ISSUER_ID
    if len(data) != 12 or not data.startswith(prefix):
        return None
    digits = data[len(prefix) :].hex()
    return digits if digits.isdigit() else None
