"""ISO/IEC 7816-4 status words (SW1 SW2) with plain meanings, in English and French.

Pure data and lookups, no I/O. :data:`SW_TABLE` is a table of
``(value, mask, name, english, french)`` rows; a row fits a status word when
``sw & mask == value``, and the most specific row wins. The families that carry
a number (``61 xx`` bytes available, ``6C xx`` exact length, ``63 Cx`` tries
left) are decoded by :class:`StatusWord`'s properties.
"""

from __future__ import annotations

from dataclasses import dataclass

from cps_middleware.errors import InvalidInput

__all__ = ["SW_TABLE", "StatusWord", "SwEntry", "status_word"]


@dataclass(frozen=True)
class SwEntry:
    """One row of :data:`SW_TABLE`: ``sw & mask == value`` selects it."""

    value: int
    mask: int
    name: str
    meaning: str
    meaning_fr: str

    @property
    def specificity(self) -> int:
        return bin(self.mask).count("1")


def _e(value: int, mask: int, name: str, en: str, fr: str) -> SwEntry:
    return SwEntry(value, mask, name, en, fr)


_EXACT = 0xFFFF
_SW2_ANY = 0xFF00
_LOW_NIBBLE_ANY = 0xFFF0

#: Status words a CPS user (or a diagnostic) can meet. ``{n}`` in a meaning is
#: replaced by the number the status word carries.
SW_TABLE: tuple[SwEntry, ...] = (
    _e(0x9000, _EXACT, "SW_OK", "success", "succès"),
    _e(0x6100, _SW2_ANY, "SW_BYTES_AVAILABLE",
       "success; {n} more bytes to fetch with GET RESPONSE",
       "succès ; {n} octets à lire par GET RESPONSE"),
    _e(0x6200, _SW2_ANY, "SW_WARNING_NVM_UNCHANGED",
       "warning: the card memory is unchanged", "avertissement : mémoire de la carte inchangée"),
    _e(0x6281, _EXACT, "SW_DATA_CORRUPTED",
       "warning: part of the returned data may be corrupted",
       "avertissement : une partie des données peut être altérée"),
    _e(0x6282, _EXACT, "SW_END_OF_FILE",
       "warning: end of file reached before the requested length",
       "avertissement : fin du fichier atteinte avant la longueur demandée"),
    _e(0x6283, _EXACT, "SW_FILE_DEACTIVATED",
       "warning: the selected file is deactivated",
       "avertissement : le fichier sélectionné est désactivé"),
    _e(0x6300, _SW2_ANY, "SW_WARNING_NVM_CHANGED",
       "warning: the card memory has changed", "avertissement : mémoire de la carte modifiée"),
    _e(0x63C0, _LOW_NIBBLE_ANY, "SW_PIN_TRIES_LEFT",
       "wrong PIN or PIN not verified; {n} tries left",
       "code porteur faux ou non présenté ; il reste {n} essai(s)"),
    _e(0x6400, _EXACT, "SW_EXECUTION_ERROR",
       "execution error, card memory unchanged", "erreur d'exécution, mémoire inchangée"),
    _e(0x6500, _SW2_ANY, "SW_MEMORY_CHANGED_ERROR",
       "execution error, card memory changed", "erreur d'exécution, mémoire modifiée"),
    _e(0x6581, _EXACT, "SW_MEMORY_FAILURE",
       "card memory failure", "défaillance de la mémoire de la carte"),
    _e(0x6700, _EXACT, "SW_WRONG_LENGTH",
       "wrong length (Lc or Le)", "longueur incorrecte (Lc ou Le)"),
    _e(0x6800, _SW2_ANY, "SW_CLA_FUNCTION_NOT_SUPPORTED",
       "function of the class byte not supported", "fonction de l'octet de classe non gérée"),
    _e(0x6881, _EXACT, "SW_LOGICAL_CHANNEL_NOT_SUPPORTED",
       "logical channel not supported", "canal logique non géré"),
    _e(0x6882, _EXACT, "SW_SECURE_MESSAGING_NOT_SUPPORTED",
       "secure messaging not supported", "messagerie sécurisée non gérée"),
    _e(0x6883, _EXACT, "SW_LAST_COMMAND_EXPECTED",
       "last command of the chain expected", "dernière commande de la chaîne attendue"),
    _e(0x6884, _EXACT, "SW_CHAINING_NOT_SUPPORTED",
       "command chaining not supported", "chaînage de commandes non géré"),
    _e(0x6900, _SW2_ANY, "SW_COMMAND_NOT_ALLOWED", "command not allowed", "commande non autorisée"),
    _e(0x6981, _EXACT, "SW_INCOMPATIBLE_FILE",
       "command incompatible with the file structure",
       "commande incompatible avec la structure du fichier"),
    _e(0x6982, _EXACT, "SW_SECURITY_STATUS_NOT_SATISFIED",
       "security status not satisfied: the PIN must be verified first",
       "conditions de sécurité non satisfaites : le code porteur doit être présenté"),
    _e(0x6983, _EXACT, "SW_PIN_BLOCKED",
       "the PIN is blocked (no try left): unblock it with the unblocking code",
       "code porteur bloqué (plus aucun essai) : le débloquer avec le code de déblocage"),
    _e(0x6984, _EXACT, "SW_REFERENCE_DATA_NOT_USABLE",
       "reference data not usable (PIN or key invalidated)",
       "données de référence inutilisables (code ou clé invalidé)"),
    _e(0x6985, _EXACT, "SW_CONDITIONS_NOT_SATISFIED",
       "conditions of use not satisfied", "conditions d'utilisation non satisfaites"),
    _e(0x6986, _EXACT, "SW_NO_CURRENT_EF",
       "command not allowed: no file selected", "commande interdite : aucun fichier sélectionné"),
    _e(0x6987, _EXACT, "SW_SM_DATA_MISSING",
       "secure messaging data objects missing", "objets de messagerie sécurisée absents"),
    _e(0x6988, _EXACT, "SW_SM_DATA_INCORRECT",
       "secure messaging data objects incorrect", "objets de messagerie sécurisée incorrects"),
    _e(0x6A00, _SW2_ANY, "SW_WRONG_PARAMETERS",
       "wrong parameters P1-P2", "paramètres P1-P2 incorrects"),
    _e(0x6A80, _EXACT, "SW_WRONG_DATA",
       "incorrect parameters in the data field", "paramètres incorrects dans les données"),
    _e(0x6A81, _EXACT, "SW_FUNCTION_NOT_SUPPORTED", "function not supported", "fonction non gérée"),
    _e(0x6A82, _EXACT, "SW_FILE_NOT_FOUND",
       "file or application not found", "fichier ou application introuvable"),
    _e(0x6A83, _EXACT, "SW_RECORD_NOT_FOUND", "record not found", "enregistrement introuvable"),
    _e(0x6A84, _EXACT, "SW_FILE_FULL", "not enough memory space in the file",
       "espace mémoire insuffisant dans le fichier"),
    _e(0x6A86, _EXACT, "SW_INCORRECT_P1P2",
       "incorrect parameters P1-P2", "paramètres P1-P2 incorrects"),
    _e(0x6A87, _EXACT, "SW_LC_INCONSISTENT",
       "Lc inconsistent with P1-P2", "Lc incohérent avec P1-P2"),
    _e(0x6A88, _EXACT, "SW_REFERENCED_DATA_NOT_FOUND",
       "referenced data (PIN, key) not found", "donnée référencée (code, clé) introuvable"),
    _e(0x6B00, _EXACT, "SW_WRONG_P1P2",
       "wrong parameters P1-P2 (offset outside the file)",
       "paramètres P1-P2 incorrects (position hors du fichier)"),
    _e(0x6C00, _SW2_ANY, "SW_WRONG_LE",
       "wrong Le: the card has exactly {n} bytes",
       "Le incorrect : la carte a exactement {n} octets"),
    _e(0x6D00, _EXACT, "SW_INS_NOT_SUPPORTED",
       "instruction not supported by the card", "instruction non gérée par la carte"),
    _e(0x6E00, _EXACT, "SW_CLA_NOT_SUPPORTED",
       "class not supported by the card", "classe non gérée par la carte"),
    _e(0x6F00, _EXACT, "SW_UNKNOWN", "card error, no precise diagnosis",
       "erreur de la carte, sans diagnostic précis"),
)


def _lookup(sw: int) -> SwEntry | None:
    fits = [e for e in SW_TABLE if sw & e.mask == e.value]
    return max(fits, key=lambda e: e.specificity) if fits else None


@dataclass(frozen=True)
class StatusWord:
    """A status word with its meaning. ``StatusWord(0x63, 0xC2).tries_left == 2``."""

    sw1: int
    sw2: int

    def __post_init__(self) -> None:
        if not (0 <= self.sw1 <= 0xFF and 0 <= self.sw2 <= 0xFF):
            raise InvalidInput(f"status word bytes out of range: {self.sw1!r} {self.sw2!r}")

    @classmethod
    def from_response(cls, response: bytes | bytearray | list[int]) -> StatusWord:
        """The status word at the end of a response APDU."""
        if len(response) < 2:
            raise InvalidInput("a response APDU ends with SW1 SW2; got fewer than 2 bytes")
        return cls(response[-2], response[-1])

    @property
    def value(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def entry(self) -> SwEntry | None:
        return _lookup(self.value)

    @property
    def name(self) -> str:
        entry = self.entry
        return entry.name if entry else f"SW_{self.value:04X}"

    @property
    def code_name(self) -> str:
        """``SW_63C2`` style name, as the error tree's ``code_name`` uses it."""
        return f"SW_{self.value:04X}"

    def _number(self) -> int | None:
        if self.sw1 in (0x61, 0x6C):
            return self.sw2 or 256
        if self.sw1 == 0x63 and self.sw2 & 0xF0 == 0xC0:
            return self.sw2 & 0x0F
        return None

    @property
    def meaning(self) -> str:
        entry = self.entry
        if entry is None:
            return "unknown status word"
        return entry.meaning.replace("{n}", str(self._number()))

    @property
    def meaning_fr(self) -> str:
        entry = self.entry
        if entry is None:
            return "mot d'état inconnu"
        return entry.meaning_fr.replace("{n}", str(self._number()))

    @property
    def ok(self) -> bool:
        """Success (``90 00``) or success with more data (``61 xx``)."""
        return self.value == 0x9000 or self.sw1 == 0x61

    @property
    def is_warning(self) -> bool:
        return self.sw1 in (0x62, 0x63)

    @property
    def tries_left(self) -> int | None:
        """Tries left from ``63 Cx``; 0 for ``69 83`` (blocked); ``None`` otherwise."""
        if self.sw1 == 0x63 and self.sw2 & 0xF0 == 0xC0:
            return self.sw2 & 0x0F
        if self.value == 0x6983:
            return 0
        return None

    @property
    def pin_blocked(self) -> bool:
        return self.value == 0x6983

    @property
    def bytes_available(self) -> int | None:
        """``61 xx``: bytes waiting for GET RESPONSE (``00`` means 256)."""
        return (self.sw2 or 256) if self.sw1 == 0x61 else None

    @property
    def exact_length(self) -> int | None:
        """``6C xx``: the Le the card wants (``00`` means 256)."""
        return (self.sw2 or 256) if self.sw1 == 0x6C else None

    def __str__(self) -> str:
        return f"{self.sw1:02X} {self.sw2:02X} ({self.meaning})"


def status_word(response_or_sw: bytes | bytearray | list[int] | int) -> StatusWord:
    """A :class:`StatusWord` from a 16-bit value or from the end of a response APDU."""
    if isinstance(response_or_sw, int):
        if not 0 <= response_or_sw <= 0xFFFF:
            raise InvalidInput(f"status word out of range: {response_or_sw!r}")
        return StatusWord(response_or_sw >> 8, response_or_sw & 0xFF)
    return StatusWord.from_response(response_or_sw)
