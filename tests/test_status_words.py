"""Status words: table lookups, tries left, GET RESPONSE / Le hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps_middleware.cards.status_words import SW_TABLE, StatusWord, status_word
from cps_middleware.errors import InvalidInput


@pytest.mark.parametrize(("sw2", "left"), [(0xC3, 3), (0xC2, 2), (0xC1, 1), (0xC0, 0)])
def test_tries_left(sw2: int, left: int) -> None:
    sw = StatusWord(0x63, sw2)
    assert sw.tries_left == left
    assert sw.name == "SW_PIN_TRIES_LEFT"
    assert f"{left} tries left" in sw.meaning
    assert f"il reste {left} essai" in sw.meaning_fr
    assert not sw.ok and sw.is_warning


def test_blocked() -> None:
    sw = status_word(0x6983)
    assert sw.pin_blocked and sw.tries_left == 0
    assert "blocked" in sw.meaning and "bloqué" in sw.meaning_fr
    assert sw.code_name == "SW_6983"


def test_success_and_more_data() -> None:
    assert status_word(b"\x01\x02\x90\x00").ok
    sw = status_word(0x6117)
    assert sw.ok and sw.bytes_available == 0x17 and "23 more bytes" in sw.meaning
    assert status_word(0x6100).bytes_available == 256
    assert status_word(0x6C10).exact_length == 16


@pytest.mark.parametrize(
    ("value", "name"),
    [(0x6A82, "SW_FILE_NOT_FOUND"), (0x6D00, "SW_INS_NOT_SUPPORTED"),
     (0x6E00, "SW_CLA_NOT_SUPPORTED"), (0x6982, "SW_SECURITY_STATUS_NOT_SATISFIED"),
     (0x6282, "SW_END_OF_FILE"), (0x6A88, "SW_REFERENCED_DATA_NOT_FOUND"),
     (0x6700, "SW_WRONG_LENGTH"), (0x6A86, "SW_INCORRECT_P1P2")],
)
def test_names(value: int, name: str) -> None:
    assert status_word(value).name == name


def test_unknown_and_bad_input() -> None:
    sw = status_word(0x9ABC)
    assert sw.name == "SW_9ABC" and sw.meaning == "unknown status word"
    with pytest.raises(InvalidInput):
        status_word(b"\x90")
    with pytest.raises(InvalidInput):
        status_word(0x10000)
    with pytest.raises(InvalidInput):
        StatusWord(256, 0)


def test_table_rows_are_distinct() -> None:
    keys = [(e.value, e.mask) for e in SW_TABLE]
    assert len(keys) == len(set(keys))
    assert all(e.value & e.mask == e.value for e in SW_TABLE)


@given(st.integers(0, 0xFFFF))
def test_property_every_sw_has_text(value: int) -> None:
    sw = status_word(value)
    assert sw.value == value
    assert sw.meaning and sw.meaning_fr and "{n}" not in sw.meaning
    assert str(sw).startswith(f"{value >> 8:02X} {value & 0xFF:02X}")
