"""Sentences shared by several areas (tries left, yes/no, generic outcomes)."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "common.tries_left": Msg(fr="{n} essai(s) restant(s)", en="{n} tries left"),
    "common.yes": Msg(fr="oui", en="yes"),
    "common.no": Msg(fr="non", en="no"),
    "common.error": Msg(fr="Erreur", en="Error"),
    "common.skipped": Msg(fr="ignoré", en="skipped"),
    "common.technical": Msg(fr="détail technique : {detail}", en="technical detail: {detail}"),
    "common.test_card": Msg(fr="carte de TEST", en="TEST card"),
    "common.none": Msg(fr="aucun", en="none"),
}
