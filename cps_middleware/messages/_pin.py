"""The holder PIN as a person reads it: states, prompts, outcomes."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "pin.status_ok": Msg(fr="non bloqué", en="not blocked"),
    "pin.status_count_low": Msg(fr="des essais ont échoué", en="tries have failed"),
    "pin.status_final_try": Msg(fr="dernier essai", en="final try"),
    "pin.status_locked": Msg(fr="bloqué", en="blocked"),
    "pin.status_pin_pad": Msg(fr="saisi sur le lecteur", en="typed on the reader"),
    "pin.status_line": Msg(fr="Code porteur : {status}", en="PIN: {status}"),
    "pin.type_on_reader": Msg(fr="Tapez le code porteur sur le clavier du lecteur.",
                              en="Type the PIN on the reader's keypad."),
    "pin.prompt": Msg(fr="Code porteur CPS : ", en="CPS PIN: "),
    "pin.prompt_current": Msg(fr="Code porteur actuel : ", en="Current PIN: "),
    "pin.prompt_new": Msg(fr="Nouveau code porteur : ", en="New PIN: "),
    "pin.prompt_new_again": Msg(fr="Nouveau code porteur (confirmation) : ",
                                en="New PIN (again): "),
    "pin.prompt_puk": Msg(fr="Code de déblocage (PUK) : ", en="Unblocking code (PUK): "),
    "pin.correct": Msg(fr="Code porteur correct.", en="PIN correct."),
    "pin.changed": Msg(fr="Code porteur changé.", en="PIN changed."),
    "pin.unblocked": Msg(fr="Code porteur débloqué.", en="PIN unblocked."),
}
