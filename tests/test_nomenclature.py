"""The ANS nomenclature shipped as package data (cps_middleware.cards.nomenclature)."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps_middleware.cards import nomenclature as nom
from cps_middleware.errors import InvalidInput


def _raw() -> bytes:
    return resources.files("cps_middleware.cards").joinpath("data", "DICO-FR.GIP").read_bytes()


def test_tables_and_version() -> None:
    n = nom.nomenclature()
    assert n.version == "02.18"
    for table_id in ("G01", "G02", "G08", "G15", "R01", "R02", "R03", "G00", "G12", "G102"):
        assert table_id in n.tables and len(n.table(table_id)) > 0
    assert "NOM_TABLE" not in n.tables and "G999" not in n.tables
    assert n.table("G15").title == "Professions"
    assert n.table("G15").field_name == "Profession"
    assert n.table("R01").title == "Spécialités RPPS"


def test_domain_values() -> None:
    assert nom.profession(10).label == "Médecin"
    assert nom.profession("21").label == "Pharmacien"
    assert nom.profession(40).label == "Chirurgien-Dentiste"
    assert nom.profession(50).label == "Sage-Femme"
    assert nom.profession(60).label == "Infirmier"
    assert nom.profession(70).label == "Masseur-Kinésithérapeute"
    assert nom.card_type(0).label == "Carte de Professionnel de Santé (CPS)"
    assert nom.card_type("01").code == "01"
    assert nom.card_category("80").label == "Carte de PS ou de Personnel de Santé de TEST"
    assert nom.identifier_type(8).label == "N° RPPS"
    assert nom.identifier_type(0).label == "N° ADELI"
    assert nom.rpps_speciality("SM02").label == "Anesthésie-réanimation (SM)"
    assert nom.rpps_speciality("sm02").label == "Anesthésie-réanimation (SM)"


def test_unknown_codes_and_tables_never_raise() -> None:
    entry = nom.profession(61)
    assert entry.unknown and entry.code == "61" and entry.label == "61"
    assert "unknown" in str(entry)
    assert nom.lookup("G77", "1").unknown
    assert nom.profession("²").unknown  # a Unicode digit that int() refuses
    assert 61 not in nom.nomenclature().table("G15")
    assert 60 in nom.nomenclature().table("G15")
    with pytest.raises(InvalidInput):
        nom.nomenclature().table("G77")


def test_qualified_codes() -> None:
    # G102: the same zone code exists for several agreements (third column).
    assert nom.lookup("G102", "10", "1").label == "Zone A"
    assert nom.lookup("G102", "80", "2").label == "Zone B"
    assert nom.lookup("G102", "80", "9").unknown


def test_every_entry_is_found_by_its_own_code() -> None:
    for table in nom.nomenclature().tables.values():
        for entry in table:
            found = table.lookup(entry.code, entry.qualifier)
            assert found == entry, (table.id, entry)


def test_checksum_guards_the_file() -> None:
    raw = _raw()
    assert nom.load_nomenclature(raw).version == "02.18"
    tampered = raw.replace(b"Infirmier\r\n", b"Infirmiere\r\n", 1)
    assert tampered != raw
    with pytest.raises(InvalidInput, match="checksum"):
        nom.load_nomenclature(tampered)
    with pytest.raises(InvalidInput, match="fields"):
        nom.load_nomenclature(b"G15\t60\tInfirmier\r\n")


def test_file_without_checksum_loads() -> None:
    data = "G15\t60\t\t\t9\tInfirmier\r\nNOM_TABLE\tG15\t\t\t11\tProfessions\r\n"
    n = nom.load_nomenclature(data.encode("latin-1"))
    assert n.table("G15").lookup("60").label == "Infirmier"


@settings(max_examples=200)
@given(table=st.sampled_from(sorted(nom.nomenclature().tables)), code=st.text(max_size=8))
def test_lookup_is_total(table: str, code: str) -> None:
    entry = nom.lookup(table, code)
    assert entry.table == table
    if entry.unknown:
        assert entry.label == code.strip()
