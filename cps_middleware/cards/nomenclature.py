"""The ANS nomenclature (``DICO-FR.GIP``): professions, card types, card categories ...

The file ships as package data, exactly as the ANS middleware installs it
(Latin-1, CRLF, tab-separated: table, code, qualifier, -, label length, label).
Two pseudo-tables describe the others: ``NOM_TABLE`` gives each table's title
and ``NOM_CHAMP`` the name of the field it codes; ``G999`` holds the version
and a SHA-1 of the rest of the file, which :func:`load_nomenclature` checks.

A lookup never raises for an unknown code: it returns a
:class:`NomenclatureEntry` whose ``label`` is the code itself and whose
``unknown`` flag is set, so a new profession on a card never breaks a caller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from cps_middleware.errors import InvalidInput

__all__ = [
    "ADELI_SPECIALITIES",
    "CARD_CATEGORIES",
    "CARD_TYPES",
    "CIVILITIES",
    "IDENTIFIER_TYPES",
    "PROFESSIONS",
    "RPPS_SPECIALITIES",
    "STRUCTURE_IDENTIFIER_TYPES",
    "Nomenclature",
    "NomenclatureEntry",
    "NomenclatureTable",
    "card_category",
    "card_type",
    "identifier_type",
    "load_nomenclature",
    "lookup",
    "nomenclature",
    "profession",
    "rpps_speciality",
]

# Table ids of the tables the library itself uses (every other table is
# reachable by its id through :func:`lookup` / :meth:`Nomenclature.table`).
CARD_CATEGORIES = "G01"
CARD_TYPES = "G02"
CIVILITIES = "G03"
STRUCTURE_IDENTIFIER_TYPES = "G07"
IDENTIFIER_TYPES = "G08"
ADELI_SPECIALITIES = "G12"
PROFESSIONS = "G15"
RPPS_SPECIALITIES = "R01"

_RESOURCE = "DICO-FR.GIP"
_META_TABLES = frozenset({"NOM_TABLE", "NOM_CHAMP", "G999"})


@dataclass(frozen=True)
class NomenclatureEntry:
    """One coded value: ``lookup("G15", 60)`` -> ``NomenclatureEntry("G15", "60", "Infirmier")``.

    ``qualifier`` is the file's third column, used by a few tables (G102 tariff
    zones per agreement) where one code appears several times. ``unknown`` is
    True when the code is not in the table; ``label`` is then the code itself.
    """

    table: str
    code: str
    label: str
    qualifier: str = ""
    unknown: bool = False

    def __str__(self) -> str:
        return self.label if not self.unknown else f"{self.code} (unknown {self.table} code)"


@dataclass(frozen=True)
class NomenclatureTable:
    """One table of the nomenclature (``G15`` professions ...)."""

    id: str
    title: str
    field_name: str
    entries: tuple[NomenclatureEntry, ...]
    _index: Mapping[tuple[str, str], NomenclatureEntry] = field(
        default_factory=dict, repr=False, compare=False
    )

    def lookup(self, code: str | int, qualifier: str | None = None) -> NomenclatureEntry:
        """The entry for ``code`` (``60``, ``"60"``, ``"060"`` are the same numeric code).

        Without ``qualifier`` the first entry with this code is returned.
        Unknown codes give an entry with ``unknown=True``; this never raises.
        """
        key = _normalise(code)
        if qualifier is not None:
            found = self._index.get((key, qualifier))
        else:
            found = self._index.get((key, ""))
            if found is None:
                found = next((e for e in self.entries if _normalise(e.code) == key), None)
        if found is not None:
            return found
        return NomenclatureEntry(
            self.id, _display_code(code), _display_code(code), qualifier or "", unknown=True
        )

    def codes(self) -> tuple[str, ...]:
        """Every code of the table, in the table's order."""
        return tuple(e.code for e in self.entries)

    def __iter__(self) -> Iterator[NomenclatureEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str | int):
            return False
        return not self.lookup(code).unknown


@dataclass(frozen=True)
class Nomenclature:
    """The whole nomenclature file: its version and its tables by id."""

    version: str
    tables: Mapping[str, NomenclatureTable]

    def table(self, table_id: str) -> NomenclatureTable:
        """The table ``name`` (``KeyError`` if the nomenclature has none)."""
        try:
            return self.tables[table_id]
        except KeyError:
            raise InvalidInput(
                f"no nomenclature table {table_id!r}",
                hint="known tables: " + ", ".join(sorted(self.tables)),
            ) from None

    def lookup(
        self, table_id: str, code: str | int, qualifier: str | None = None
    ) -> NomenclatureEntry:
        """Like :meth:`NomenclatureTable.lookup`; an unknown table gives an unknown entry too."""
        table = self.tables.get(table_id)
        if table is None:
            return NomenclatureEntry(
                table_id, _display_code(code), _display_code(code), qualifier or "", unknown=True
            )
        return table.lookup(code, qualifier)


def _display_code(code: str | int) -> str:
    return str(code).strip()


def _normalise(code: str | int) -> str:
    """Numeric codes compare by value (a certificate's INTEGER 0 is table code ``00``)."""
    text = str(code).strip()
    if text.isascii() and text.isdigit():
        return str(int(text))
    return text.upper()


def load_nomenclature(data: bytes) -> Nomenclature:
    """Parse the bytes of a ``DICO-FR.GIP`` file.

    Raises :class:`InvalidInput` when a line does not have six fields or when
    the file's own SHA-1 (table G999) does not match its content.
    """
    text = data.decode("latin-1")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    titles: dict[str, str] = {}
    fields: dict[str, str] = {}
    rows: dict[str, list[NomenclatureEntry]] = {}
    meta: dict[str, str] = {}
    checksum_line: str | None = None
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 6:
            raise InvalidInput(f"nomenclature line {number}: {len(parts)} fields, expected 6")
        table, code, qualifier, _unused, _length, label = parts
        if table == "NOM_TABLE":
            titles[code] = label
        elif table == "NOM_CHAMP":
            fields[code] = label
        elif table == "G999":
            meta[code] = label
            if code == "Checksum":
                checksum_line = line
        else:
            rows.setdefault(table, []).append(
                NomenclatureEntry(table, code, label, qualifier=qualifier)
            )
    _check_sha1(data, meta.get("Checksum"), checksum_line)
    tables: dict[str, NomenclatureTable] = {}
    for table_id in sorted(set(rows) | (set(titles) - _META_TABLES)):
        entries = tuple(rows.get(table_id, ()))
        index: dict[tuple[str, str], NomenclatureEntry] = {}
        for entry in entries:
            index.setdefault((_normalise(entry.code), entry.qualifier), entry)
        tables[table_id] = NomenclatureTable(
            table_id, titles.get(table_id, table_id), fields.get(table_id, ""), entries, index
        )
    version = meta.get("Version", "")
    match = re.search(r"(\d+(?:\.\d+)+)", version)
    return Nomenclature(match.group(1) if match else version, tables)


def _check_sha1(data: bytes, declared: str | None, checksum_line: str | None) -> None:
    # The G999 "Checksum" row holds the SHA-1 of the file without that row.
    if declared is None or checksum_line is None:
        return
    match = re.search(r"([0-9A-Fa-f]{40})", declared)
    if match is None:
        return
    raw_line = checksum_line.encode("latin-1")
    for ending in (b"\r\n", b"\n"):
        if raw_line + ending in data:
            body = data.replace(raw_line + ending, b"", 1)
            break
    else:
        body = data.replace(raw_line, b"", 1)
    if hashlib.sha1(body).hexdigest().upper() != match.group(1).upper():
        raise InvalidInput(
            "the nomenclature file does not match its own SHA-1 checksum",
            hint="the file was altered or truncated; reinstall it from the ANS middleware",
        )


@cache
def nomenclature() -> Nomenclature:
    """The nomenclature shipped with the package (parsed once, then cached)."""
    data = resources.files("cps_middleware.cards").joinpath("data", _RESOURCE).read_bytes()
    return load_nomenclature(data)


def lookup(table_id: str, code: str | int, qualifier: str | None = None) -> NomenclatureEntry:
    """Look a code up in a table of the shipped nomenclature; never raises."""
    return nomenclature().lookup(table_id, code, qualifier)


def profession(code: str | int) -> NomenclatureEntry:
    """Profession (G15): ``profession(60).label == "Infirmier"``."""
    return lookup(PROFESSIONS, code)


def card_type(code: str | int) -> NomenclatureEntry:
    """Card type (G02): ``00`` CPS, ``01`` CPF, ``02`` CPE, ``03`` CPA."""
    return lookup(CARD_TYPES, code)


def card_category(code: str | int) -> NomenclatureEntry:
    """Card category (G01): ``00`` production card, ``80`` test card ..."""
    return lookup(CARD_CATEGORIES, code)


def identifier_type(code: str | int) -> NomenclatureEntry:
    """Person identifier type (G08): ``8`` RPPS, ``0`` ADELI ..."""
    return lookup(IDENTIFIER_TYPES, code)


def rpps_speciality(code: str | int) -> NomenclatureEntry:
    """RPPS speciality (R01), e.g. ``SM02`` Anesthésie-réanimation (SM)."""
    return lookup(RPPS_SPECIALITIES, code)
