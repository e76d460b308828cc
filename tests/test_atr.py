"""ATR parsing (ISO/IEC 7816-3) and CPS identification from the ATR table."""

from __future__ import annotations

import warnings
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps_middleware.cards.atr import (
    ATR_TABLE,
    AtrWarning,
    CardGeneration,
    CardInterface,
    identify_atr,
    parse_atr,
)
from cps_middleware.errors import InvalidInput

CPS3 = "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"
CPS3_CL = "3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E"
CPS4 = "3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44"
SESAM = "3B AC 00 40 2A 00 12 25 00 64 80 82 02 12 00 90 00"
MIFARE = "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A"


@pytest.mark.parametrize(
    ("atr", "generation", "interface", "name"),
    [
        (CPS3, CardGeneration.CPS3, CardInterface.CONTACT, "CPS3 contact"),
        (CPS3_CL, CardGeneration.CPS3, CardInterface.CONTACTLESS, "CPS3 contactless"),
        (CPS4, CardGeneration.CPS4, CardInterface.CONTACT, "CPS4"),
        ("3B 9B 18 80 01 00 12 25 00 64 80 00 04 01 00 90 44", CardGeneration.CPS4,
         CardInterface.CONTACT, "CPS4 (pre-series)"),
        ("3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00", CardGeneration.CPS4,
         CardInterface.CONTACT, "CPS4 (T=0 only)"),
        (SESAM, CardGeneration.CPS_UNKNOWN_GENERATION, CardInterface.CONTACT,
         "Sesam Vitale card CPS"),
        (MIFARE, CardGeneration.NOT_CPS, CardInterface.CONTACTLESS, "not a CPS"),
    ],
)
def test_identify_table(atr: str, generation: CardGeneration, interface: CardInterface,
                        name: str) -> None:
    ident = identify_atr(atr)
    assert ident.generation is generation
    assert ident.interface is interface
    assert ident.name == name
    assert ident.is_cps == (generation is not CardGeneration.NOT_CPS)


def test_cps3_mask_accepts_other_cps3_variants() -> None:
    # Bytes 1-4 and 11-13 are masked out: another CPS3 personalisation still matches.
    variant = bytearray(bytes.fromhex(CPS3))
    variant[12], variant[13] = 0x05, 0x22
    assert identify_atr(bytes(variant)).generation is CardGeneration.CPS3
    variant[6] ^= 0xFF  # a byte under the mask: no longer a CPS3
    assert identify_atr(bytes(variant)).generation is CardGeneration.NOT_CPS


def test_exact_entry_beats_mask() -> None:
    # "Sesam Vitale CPS" also fits the CPS3 mask; the exact entry is more specific.
    cps3 = next(p for p in ATR_TABLE if p.name == "CPS3 contact")
    assert cps3.matches(bytes.fromhex(SESAM))
    assert identify_atr(SESAM).pattern is not None
    assert identify_atr(SESAM).pattern.confirmed is False  # type: ignore[union-attr]


def test_parse_cps4_fields() -> None:
    p = parse_atr(CPS4)
    assert p.ts == 0x3B and p.convention == "direct"
    assert p.t0 == 0x9B
    assert p.groups[0].ta == 0x18 and p.groups[0].td == 0x80
    assert p.groups[1].td == 0x01
    assert p.protocols == (0, 1)
    assert p.historical == bytes.fromhex("00 12 25 00 64 80 04 01 00 00 90")
    assert p.tck == 0x44 and p.tck_valid is True
    assert p.well_formed


def test_parse_cps3_t0_only_has_no_tck() -> None:
    p = parse_atr(CPS3)
    assert p.protocols == (0,)
    assert p.tck is None and p.tck_valid is None
    assert p.groups[0].tb == 0x00 and p.groups[1].tc == 0x2A
    assert len(p.historical) == 12


def test_wrong_tck_is_a_warning_not_a_crash() -> None:
    bad = CPS4[:-2] + "45"
    with pytest.warns(AtrWarning, match="wrong TCK 45, expected 44"):
        p = parse_atr(bad)
    assert p.tck_valid is False
    assert not p.well_formed
    # Identification still works (the CPS4 entry is exact, so this is not a CPS4).
    assert identify_atr(bad).generation is CardGeneration.NOT_CPS


@pytest.mark.parametrize(
    ("atr", "problem"),
    [
        ("", "shorter than 2 bytes"),
        ("3B", "shorter than 2 bytes"),
        ("3B 9B 18", "truncated"),
        ("3B 05 01 02", "truncated"),
        ("3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90", "TCK missing"),
        ("3B 00 AA BB", "extra byte"),
        ("3C 00", "TS is 3C"),
    ],
)
def test_malformed(atr: str, problem: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = parse_atr(atr)
    assert any(problem in x for x in p.problems), p.problems
    assert any(issubclass(w.category, AtrWarning) for w in caught)


def test_list_of_ints_and_bad_input() -> None:
    assert parse_atr(list(bytes.fromhex(CPS4))).tck == 0x44
    with pytest.raises(InvalidInput):
        parse_atr("zz")
    with pytest.raises(InvalidInput):
        parse_atr([300])


# --- properties --------------------------------------------------------------------

_byte = st.integers(0, 255)


@st.composite
def well_formed_atrs(draw: st.DrawFn) -> tuple[bytes, list[dict[str, int | None]], bytes, bool]:
    """An ATR built from random interface groups and historical bytes, TCK when due."""
    n_groups = draw(st.integers(1, 4))
    groups: list[dict[str, int | None]] = []
    for i in range(n_groups):
        present = {k: draw(st.booleans()) for k in ("ta", "tb", "tc")}
        g: dict[str, int | None] = {k: (draw(_byte) if v else None) for k, v in present.items()}
        g["td"] = None
        groups.append(g)
        if i > 0:
            groups[i - 1]["td"] = draw(st.integers(0, 15))  # protocol in the low nibble
    historical = bytes(draw(st.lists(_byte, max_size=15)))

    def y(g: dict[str, int | None]) -> int:
        return sum(bit for bit, k in ((1, "ta"), (2, "tb"), (4, "tc"), (8, "td"))
                   if g[k] is not None)

    body = bytearray([(y(groups[0]) << 4) | len(historical)])
    for i, g in enumerate(groups):
        if g["td"] is not None:
            g["td"] = (y(groups[i + 1]) << 4) | (g["td"] & 0x0F)
        body += bytes(v for k in ("ta", "tb", "tc", "td") if (v := g[k]) is not None)
    body += historical
    needs_tck = any(g["td"] is not None and g["td"] & 0x0F != 0 for g in groups)
    raw = b"\x3b" + bytes(body)
    if needs_tck:
        raw += bytes([reduce(lambda a, b: a ^ b, body, 0)])
    return raw, groups, historical, needs_tck


@given(well_formed_atrs())
def test_property_round_trip(case: tuple[bytes, list[dict[str, int | None]], bytes, bool]) -> None:
    raw, groups, historical, needs_tck = case
    p = parse_atr(raw, warn=False)
    assert p.problems == ()
    assert p.historical == historical
    # Groups with no byte at all are not reported.
    expected = [g for g in groups if any(v is not None for v in g.values())]
    assert [(g.ta, g.tb, g.tc, g.td) for g in p.groups] == [
        (g["ta"], g["tb"], g["tc"], g["td"]) for g in expected
    ]
    assert (p.tck is not None) == needs_tck
    if needs_tck:
        assert p.tck_valid is True
        assert p.tck_required


@given(well_formed_atrs(), st.integers(1, 255))
def test_property_corrupted_tck_warns(
    case: tuple[bytes, list[dict[str, int | None]], bytes, bool], flip: int
) -> None:
    raw, _groups, _hist, needs_tck = case
    if not needs_tck:
        return
    bad = raw[:-1] + bytes([raw[-1] ^ flip])
    with pytest.warns(AtrWarning, match="wrong TCK"):
        p = parse_atr(bad)
    assert p.tck_valid is False


@given(st.binary(max_size=40))
def test_property_any_bytes_never_raise(raw: bytes) -> None:
    p = parse_atr(raw, warn=False)
    ident = identify_atr(raw)
    assert p.raw == raw
    assert ident.generation is CardGeneration.NOT_CPS or ident.pattern is not None
    total = 2 + sum(sum(v is not None for v in (g.ta, g.tb, g.tc, g.td)) for g in p.groups)
    if p.well_formed:
        assert total + len(p.historical) + (p.tck is not None) == len(raw)
