"""The CPS test-token PKCS#11 module (native/cpstoken) against real SoftHSM.

Each scenario runs python-pkcs11 (or OpenSC's pkcs11-tool) in a subprocess: a
PKCS#11 module initialised in the pytest process would stay loaded there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cps_middleware.testing import _tokenstate as ts
from cps_middleware.testing import softhsm_library, test_token_module

MODULE = Path(test_token_module())
SOFTHSM = softhsm_library() or "libsofthsm2.so (not found)"
PIN, PUK = "1234", "12345678"

pytestmark = pytest.mark.skipif(
    shutil.which("softhsm2-util") is None or not Path(SOFTHSM).exists(),
    reason="SoftHSM (softhsm2) is not installed: run scripts/bootstrap.sh",
)

# Prelude of every scenario: helpers printing one JSON line per observation.
PRELUDE = textwrap.dedent(
    """
    import json, os, sys, time
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass, TokenFlag
    from pkcs11.exceptions import PKCS11Error
    lib = pkcs11.lib(os.environ["CPS_MODULE"])

    def out(**kw):
        print(json.dumps(kw), flush=True)

    def err(exc):
        return type(exc).__name__

    def flags(slot_index=0):
        slot = lib.get_slots()[slot_index]
        f = slot.get_token().flags
        names = [n for n in ("USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY", "USER_PIN_LOCKED",
                             "SO_PIN_COUNT_LOW", "SO_PIN_FINAL_TRY", "SO_PIN_LOCKED",
                             "PROTECTED_AUTHENTICATION_PATH") if f & TokenFlag[n]]
        return names

    def token(slot_index=0):
        return lib.get_slots()[slot_index].get_token()

    def login(pin, slot_index=0, **kw):
        try:
            s = token(slot_index).open(user_pin=pin, **kw)
        except PKCS11Error as exc:
            return None, err(exc)
        return s, "ok"

    def sign(session, data=b"data"):
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="CPS_PRIV_AUT")
        return key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    """
)


def _card_template(root: Path) -> Path:
    """One SoftHSM token with an RSA key, built once and copied per card."""
    d = root / "template"
    (d / "tokens").mkdir(parents=True)
    conf = d / "softhsm2.conf"
    _write_conf(d)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "template",
            "--pin",
            PIN,
            "--so-pin",
            PUK,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    script = textwrap.dedent(
        f"""
        import pkcs11
        from pkcs11 import KeyType, Mechanism
        lib = pkcs11.lib({SOFTHSM!r})
        with lib.get_token(token_label="template").open(rw=True, user_pin={PIN!r}) as s:
            s.generate_keypair(KeyType.RSA, 2048, label="CPS_PRIV_AUT", id=b"\\x01", store=True,
                               mechanism=Mechanism.RSA_PKCS_KEY_PAIR_GEN)
        """
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    return d


def _write_conf(card: Path) -> None:
    (card / "softhsm2.conf").write_text(
        f"directories.tokendir = {card / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MODULE.exists():
        pytest.fail(f"{MODULE} is not built: run setup.py build_ext --inplace")
    return _card_template(tmp_path_factory.mktemp("cpstoken-template"))


class Cards:
    """A CPS_TEST_CARDS_DIR with cards copied from the template."""

    def __init__(self, root: Path, template: Path) -> None:
        self.root = root
        self.template = template
        root.mkdir(exist_ok=True)

    def add(self, card_id: str, **settings: Any) -> Path:
        card = self.root / card_id
        shutil.copytree(self.template / "tokens", card / "tokens")
        _write_conf(card)
        label = settings.pop("label", card_id)
        state = ts.TokenSettings(label=label, serial=f"SN-{card_id}"[:16], **settings)
        ts.create(card, state)
        return card

    def env(self) -> dict[str, str]:
        return {**os.environ, "CPS_TEST_CARDS_DIR": str(self.root), "CPS_MODULE": str(MODULE)}

    def run(self, body: str, timeout: float = 60, before: str = "") -> list[dict[str, Any]]:
        code = textwrap.dedent(before) + PRELUDE + textwrap.dedent(body)
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pkcs11-tool", "--module", str(MODULE), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def cards(tmp_path: Path, template: Path) -> Cards:
    return Cards(tmp_path / "cards", template)


def test_three_wrong_pins_lock_with_flags_at_each_step(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        """
        out(step="start", flags=flags())
        for i in range(3):
            s, r = login("0000")
            out(step=f"wrong{i}", result=r, flags=flags())
        s, r = login("1234")
        out(step="right-after-lock", result=r, flags=flags())
        """
    )
    assert rows == [
        {"step": "start", "flags": []},
        {"step": "wrong0", "result": "PinIncorrect", "flags": ["USER_PIN_COUNT_LOW"]},
        {
            "step": "wrong1",
            "result": "PinIncorrect",
            "flags": ["USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY"],
        },
        {"step": "wrong2", "result": "PinLocked", "flags": ["USER_PIN_LOCKED"]},
        {"step": "right-after-lock", "result": "PinLocked", "flags": ["USER_PIN_LOCKED"]},
    ]
    assert ts.read(card).pin_tries_left == 0
    # the lock is in the card, not in the process: a new process sees it too
    assert cards.run('s, r = login("1234"); out(result=r)') == [{"result": "PinLocked"}]


def test_correct_pin_resets_the_counter(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        """
        login("0000"); login("0000")
        out(flags=flags())
        s, r = login("1234")
        out(result=r, flags=flags(), signature=len(sign(s)))
        """
    )
    assert rows == [
        {"flags": ["USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY"]},
        {"result": "ok", "flags": [], "signature": 256},
    ]
    assert ts.read(card).pin_tries_left == 3


def test_puk_unblocks_and_sets_a_new_pin(cards: Cards) -> None:
    card = cards.add("c1")
    ts.block_pin(card)
    rows = cards.run(
        """
        out(flags=flags())
        s = token().open(rw=True, so_pin="12345678")
        s.init_pin("4321")
        s.close()
        out(flags=flags())
        s, r = login("1234")
        out(old=r)
        s, r = login("4321")
        out(new=r, signature=len(sign(s)))
        """
    )
    assert rows == [
        {"flags": ["USER_PIN_LOCKED"]},
        {"flags": []},
        {"old": "PinIncorrect"},
        {"new": "ok", "signature": 256},
    ]
    assert ts.read(card).pin_tries_left == 3


def test_puk_counter_locks_after_ten(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        """
        for i in range(10):
            try:
                token().open(rw=True, so_pin="00000000")
                r = "ok"
            except PKCS11Error as exc:
                r = err(exc)
            out(i=i, result=r, flags=[f for f in flags() if f.startswith("SO_")])
        try:
            token().open(rw=True, so_pin="12345678")
        except PKCS11Error as exc:
            out(right=err(exc), flags=flags())
        """
    )
    # the wrong code that blocks the counter: CKR_PIN_LOCKED, as the ANS module
    assert [r["result"] for r in rows[:10]] == ["PinIncorrect"] * 9 + ["PinLocked"]
    assert rows[0]["flags"] == ["SO_PIN_COUNT_LOW"]
    assert rows[8]["flags"] == ["SO_PIN_COUNT_LOW", "SO_PIN_FINAL_TRY"]
    assert rows[9]["flags"] == ["SO_PIN_LOCKED"]
    assert rows[10] == {"right": "PinLocked", "flags": ["SO_PIN_LOCKED"]}
    assert ts.read(card).puk_tries_left == 0


def test_right_puk_resets_its_counter(cards: Cards) -> None:
    card = cards.add("c1")
    ts.update(card, puk_tries_left=2)
    cards.run('s = token().open(rw=True, so_pin="12345678"); s.close()')
    assert ts.read(card).puk_tries_left == 10


def test_set_pin_changes_the_pin_and_counts_a_wrong_old_pin(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        """
        s = token().open(rw=True, user_pin="1234")
        try:
            s.set_pin("9999", "5678")
        except PKCS11Error as exc:
            out(wrong_old=err(exc), flags=flags())
        s.set_pin("1234", "5678")
        s.close()
        out(flags=flags())
        s, r = login("1234"); out(old=r)
        s, r = login("5678"); out(new=r)
        """
    )
    assert rows == [
        {"wrong_old": "PinIncorrect", "flags": ["USER_PIN_COUNT_LOW"]},
        {"flags": []},
        {"old": "PinIncorrect"},
        {"new": "ok"},
    ]
    assert ts.read(card).pin_tries_left == 3


def test_removed_card_and_reinsertion(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        f"""
        from cps_middleware.testing import _tokenstate as ts
        card = {str(card)!r}
        s, r = login("1234")
        old = s
        ts.remove(card)
        slot = lib.get_slots()[0]
        out(present=bool(slot.flags & pkcs11.SlotFlag.TOKEN_PRESENT),
            with_token=len(lib.get_slots(token_present=True)))
        calls = (("token", slot.get_token), ("open", lambda: token().open()),
                 ("sign", lambda: sign(old)))
        for what, call in calls:
            try:
                call(); out(what=what, result="ok")
            except PKCS11Error as exc:
                out(what=what, result=err(exc))
        ts.insert(card)
        try:
            sign(old); out(what="old-session", result="ok")
        except PKCS11Error as exc:
            out(what="old-session", result=err(exc))
        s, r = login("1234")
        out(what="relogin", result=r, signature=len(sign(s)))
        """
    )
    assert rows == [
        {"present": False, "with_token": 0},
        {"what": "token", "result": "TokenNotPresent"},
        {"what": "open", "result": "TokenNotPresent"},
        {"what": "sign", "result": "DeviceRemoved"},
        {"what": "old-session", "result": "SessionHandleInvalid"},
        {"what": "relogin", "result": "ok", "signature": 256},
    ]
    assert ts.read(card).insertions == 1


def test_card_created_after_initialisation_appears(cards: Cards, template: Path) -> None:
    cards.add("a-first")
    rows = cards.run(
        f"""
        import shutil
        from pathlib import Path
        from cps_middleware.testing import _tokenstate as ts
        out(labels=[s.get_token().label for s in lib.get_slots(token_present=True)])
        card = Path({str(cards.root / "0-later")!r})
        shutil.copytree({str(template / "tokens")!r}, card / "tokens")
        (card / "softhsm2.conf").write_text(
            f"directories.tokendir = {{card / 'tokens'}}\\nobjectstore.backend = file\\n")
        ts.create(card, ts.TokenState(label="later", serial="LATER"))
        slots = lib.get_slots(token_present=True)
        out(labels=[s.get_token().label for s in slots],
            descriptions=[s.slot_description for s in slots])
        s, r = login("1234", slot_index=0)
        out(result=r, signature=len(sign(s)))
        """
    )
    assert rows[0] == {"labels": ["a-first"]}
    # slot order is the sorted card names
    assert rows[1] == {
        "labels": ["later", "a-first"],
        "descriptions": ["CPS test reader 0-later", "CPS test reader a-first"],
    }
    assert rows[2] == {"result": "ok", "signature": 256}


def test_token_info_comes_from_the_state(cards: Cards) -> None:
    cards.add("c3", label="DUPONT CPS3", generation="CPS3")
    cards.add("c4", label="MARTIN CPS4", generation="CPS4", pin_pad=True)
    rows = cards.run(
        """
        for i in range(2):
            t = token(i)
            serial = t.serial.decode() if isinstance(t.serial, bytes) else t.serial
            out(label=t.label, manufacturer=t.manufacturer_id, model=t.model, serial=serial,
                flags=flags(i))
        """
    )
    assert rows == [
        {
            "label": "DUPONT CPS3",
            "manufacturer": "ANS",
            "model": "IAS ECC",
            "serial": "SN-c3",
            "flags": [],
        },
        {
            "label": "MARTIN CPS4",
            "manufacturer": "ANS",
            "model": "ChipDoc",
            "serial": "SN-c4",
            "flags": ["PROTECTED_AUTHENTICATION_PATH"],
        },
    ]


def test_reader_setting_names_the_slot_space_padded(cards: Cards) -> None:
    reader = "Virtual PCD 35963 00 01"
    a = cards.add("a-in-reader", reader=reader)
    cards.add("b-own-reader")
    cards.add("c-long", reader="R" * 64)
    rows = cards.run(
        f"""
        import ctypes
        from cps_middleware.testing import _tokenstate as ts
        from cps_middleware.pkcs11._module import _CkSlotInfo, _Raw
        raw = _Raw(os.environ["CPS_MODULE"])
        def described():
            got = []
            for slot in lib.get_slots():
                info = _CkSlotInfo()
                assert raw("C_GetSlotInfo", ctypes.c_ulong(slot.slot_id), ctypes.byref(info)) == 0
                got.append(bytes(info.slotDescription).hex())
            return got
        out(raw=described())
        ts.update({str(a)!r}, reader="Another reader")
        out(raw=described())
        ts.update({str(a)!r}, reader="")
        out(raw=described())
        """
    )

    def padded(text: str) -> str:
        return text.encode().ljust(64, b" ").hex()

    own, long = padded("CPS test reader b-own-reader"), padded("R" * 64)
    assert rows[0] == {"raw": [padded(reader), own, long]}
    assert rows[1] == {"raw": [padded("Another reader"), own, long]}  # read at each call
    assert rows[2] == {"raw": [padded("CPS test reader a-in-reader"), own, long]}


def test_reader_setting_is_checked_on_the_python_side() -> None:
    with pytest.raises(ValueError, match="reader"):
        ts.TokenSettings(label="x", serial="x", reader="R" * 65)
    with pytest.raises(ValueError, match="reader"):
        ts.TokenSettings(label="x", serial="x", reader="two\nlines")


def test_pin_pad_login_uses_the_pin_typed_on_the_pad(cards: Cards) -> None:
    card = cards.add("c1", pin_pad=True, pad_pin="1234")
    code = """
        s, r = login(pkcs11.PROTECTED_AUTH)
        out(result=r, flags=flags())
        """
    assert cards.run(code) == [{"result": "ok", "flags": ["PROTECTED_AUTHENTICATION_PATH"]}]
    ts.update(card, pad_pin="9999")
    assert cards.run(code) == [
        {"result": "PinIncorrect", "flags": ["USER_PIN_COUNT_LOW", "PROTECTED_AUTHENTICATION_PATH"]}
    ]


def test_mechanism_allow_list(cards: Cards) -> None:
    cards.add("c1", mechanisms=ts.CPS3_MECHANISMS)
    rows = cards.run(
        """
        slot = lib.get_slots()[0]
        out(mechanisms=sorted(m.name for m in slot.get_mechanisms()))
        s, r = login("1234")
        key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="CPS_PRIV_AUT")
        out(pkcs1=len(key.sign(b"x", mechanism=Mechanism.SHA256_RSA_PKCS)))
        try:
            key.sign(b"x", mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                     mechanism_param=(Mechanism.SHA256, pkcs11.MGF.SHA256, 32))
            out(pss="ok")
        except PKCS11Error as exc:
            out(pss=err(exc))
        """
    )
    assert rows == [
        {"mechanisms": ["RSA_PKCS", "RSA_X_509", "SHA1_RSA_PKCS", "SHA256_RSA_PKCS"]},
        {"pkcs1": 256},
        {"pss": "MechanismInvalid"},
    ]


def test_latency_delays_a_signature(cards: Cards) -> None:
    card = cards.add("c1")
    code = """
        s, r = login("1234")
        sign(s)
        t0 = time.perf_counter()
        for _ in range(3):
            sign(s)
        out(ms=(time.perf_counter() - t0) * 1000 / 3)
        """
    fast = cards.run(code)[0]["ms"]
    ts.update(card, latency_ms=150)
    slow = cards.run(code)[0]["ms"]
    assert fast < 100
    assert 150 <= slow < 150 + fast + 100


def test_pkcs11_tool_sees_the_same_lock(cards: Cards) -> None:
    card = cards.add("c1")
    listing = cards.tool("-L")
    assert listing.returncode == 0, listing.stderr
    assert "CPS test reader c1" in listing.stdout and "token manufacturer : ANS" in listing.stdout
    # two wrong PINs through pkcs11-tool ...
    for _ in range(2):
        wrong = cards.tool("--login", "--pin", "0000", "--list-objects")
        assert wrong.returncode != 0 and "CKR_PIN_INCORRECT" in wrong.stderr
    # ... are seen by python-pkcs11, which spends the last one
    rows = cards.run('out(flags=flags()); s, r = login("0000"); out(result=r)')
    assert rows == [
        {"flags": ["USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY"]},
        {"result": "PinLocked"},  # the blocking wrong PIN: CKR_PIN_LOCKED, as the ANS module
    ]
    # and pkcs11-tool sees the lock python-pkcs11 caused
    locked = cards.tool("--login", "--pin", PIN, "--list-objects")
    assert locked.returncode != 0 and "CKR_PIN_LOCKED" in locked.stderr
    info = cards.tool("-T")
    assert "user PIN locked" in info.stdout
    ts.reset_counters(card)
    ok = cards.tool("--login", "--pin", PIN, "--list-objects", "--type", "privkey")
    assert ok.returncode == 0 and "CPS_PRIV_AUT" in ok.stdout


def test_state_file_round_trip_keeps_unknown_keys(tmp_path: Path) -> None:
    card = tmp_path / "c"
    card.mkdir()
    state = ts.TokenSettings.for_generation(
        "CPS4", label="L", serial="S", latency_ms=5, pad_pin="1234"
    )
    created = ts.create(card, state)
    assert ts.read(card) == created
    assert created.pin_tries_left == 3 and created.model == "ChipDoc"
    assert "1234" not in repr(state)
    with open(card / ts.STATE_FILE, "a") as f:
        f.write("# a comment\nfuture_key=value\n")
    new = ts.update(card, present=False)
    assert not new.present and new.insertions == 0
    new = ts.insert(card)
    assert new.present and new.insertions == 1
    assert "future_key=value" in (card / ts.STATE_FILE).read_text()
    assert ts.read(card).mechanisms == ts.CPS4_MECHANISMS
    with pytest.raises(FileExistsError):
        ts.create(card, state)
    with pytest.raises(ValueError):
        ts.update(card, pin_tries_left=7)
    with pytest.raises(ValueError):
        ts.TokenState(label="L", serial="S", mechanisms=("RSA PKCS",))


def test_threads_sign_concurrently_without_an_outer_lock(cards: Cards) -> None:
    """python-pkcs11 passes C_Initialize(NULL); the module still must not crash."""
    cards.add("c1")
    cards.add("c2")
    rows = cards.run(
        """
        import threading
        errors, done = [], []
        keeper = [token(i).open(user_pin="1234") for i in range(2)]  # login is per token
        def worker(n):
            try:
                with token(n % 2).open() as s:
                    for _ in range(100):
                        assert len(sign(s)) == 256
                done.append(n)
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        out(done=len(done), errors=errors)
        """
    )
    assert rows == [{"done": 8, "errors": []}]


def test_forked_child_signs(cards: Cards) -> None:
    cards.add("c1")
    rows = cards.run(
        """
        s, r = login("1234")
        sign(s)
        for reinit in (True, False):
            pid = os.fork()
            if pid == 0:
                try:
                    if reinit:
                        lib.reinitialize()
                    else:
                        try:
                            sign(s)  # the parent's session is not the child's
                        except PKCS11Error as exc:
                            out(reinit=reinit, parent_session=err(exc))
                    s2, r2 = login("1234")
                    out(reinit=reinit, login=r2, signature=len(sign(s2)))
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
        out(parent=len(sign(s)))
        """
    )
    assert rows == [
        {"reinit": True, "login": "ok", "signature": 256},
        {"reinit": False, "parent_session": "SessionHandleInvalid"},
        {"reinit": False, "login": "ok", "signature": 256},
        {"parent": 256},
    ]


def test_many_cards_in_one_process(cards: Cards) -> None:
    """Each card has its own SoftHSM copy: no namespace limit like dlmopen's."""
    for i in range(24):
        cards.add(f"card{i:02d}")
    rows = cards.run(
        """
        sessions = []
        for i, slot in enumerate(lib.get_slots(token_present=True)):
            s, r = login("1234", slot_index=i)
            sessions.append(s)
            assert len(sign(s)) == 256
        out(cards=len(sessions), labels=sorted({s.token.label for s in sessions}))
        """
    )
    assert rows[0]["cards"] == 24
    assert rows[0]["labels"] == [f"card{i:02d}" for i in range(24)]


def test_latency_serialises_two_threads_on_one_card(cards: Cards) -> None:
    """A card does one private-key operation at a time."""
    cards.add("c1", latency_ms=100)
    rows = cards.run(
        """
        import threading
        keeper, r = login("1234")
        sessions = [token().open() for _ in range(2)]
        for s in sessions: sign(s)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=sign, args=(s,)) for s in sessions]
        for t in threads: t.start()
        for t in threads: t.join()
        out(ms=(time.perf_counter() - t0) * 1000)
        """
    )
    assert rows[0]["ms"] >= 200


def test_wait_for_slot_event_reports_removal_and_new_cards(cards: Cards, template: Path) -> None:
    card = cards.add("c1")
    rows = cards.run(
        f"""
        import ctypes, shutil
        from pathlib import Path
        from cps_middleware.testing import _tokenstate as ts
        m = ctypes.CDLL(os.environ["CPS_MODULE"])
        ulong_p = ctypes.POINTER(ctypes.c_ulong)
        m.C_WaitForSlotEvent.argtypes = [ctypes.c_ulong, ulong_p, ctypes.c_void_p]
        slot = ctypes.c_ulong(99)
        def wait(flags=1):  # CKF_DONT_BLOCK
            rv = m.C_WaitForSlotEvent(flags, ctypes.byref(slot), None)
            return [rv, slot.value if rv == 0 else None]
        out(init=m.C_Initialize(None))  # python-pkcs11 (the prelude) initialised it already
        out(nothing=wait())
        ts.remove({str(card)!r})
        out(removed=wait(), again=wait())
        ts.insert({str(card)!r})
        new = Path({str(cards.root / "c2")!r})
        shutil.copytree({str(template / "tokens")!r}, new / "tokens")
        ts.create(new, ts.TokenSettings(label="c2", serial="C2"))
        out(first=wait(), second=wait(), third=wait())
        ts.remove(new)
        out(blocking=wait(0))
        """
    )
    no_event = [0x8, None]  # CKR_NO_EVENT
    assert rows == [
        {"init": 0x191},  # CKR_CRYPTOKI_ALREADY_INITIALIZED
        {"nothing": no_event},
        {"removed": [0, 0], "again": no_event},
        {"first": [0, 0], "second": [0, 1], "third": no_event},
        {"blocking": [0, 1]},
    ]


def test_reinitialise_in_the_same_process_and_close_after_removal(cards: Cards) -> None:
    card = cards.add("c1")
    rows = cards.run(
        f"""
        from cps_middleware.testing import _tokenstate as ts
        s, r = login("1234")
        lib.reinitialize()
        try:
            sign(s)
        except PKCS11Error as exc:
            out(old=err(exc))
        s, r = login("1234")
        out(login=r, signature=len(sign(s)))
        plain = token().open()
        ts.remove({str(card)!r})
        plain.close()  # C_CloseSession on a session the removal killed: CKR_OK
        out(closed=True)
        try:
            s.close()  # python-pkcs11 logs out first: C_Logout says the card is gone
        except PKCS11Error as exc:
            out(logout=err(exc))
        """
    )
    assert rows == [
        {"old": "SessionHandleInvalid"},
        {"login": "ok", "signature": 256},
        {"closed": True},
        {"logout": "DeviceRemoved"},
    ]


@pytest.mark.parametrize("first", ["softhsm", "cpstoken"])
def test_module_works_when_a_pkcs11_library_is_loaded_globally(cards: Cards, first: str) -> None:
    """C_* names in the global scope must not capture SoftHSM's or our function list."""
    cards.add("c1")
    path = SOFTHSM if first == "softhsm" else str(MODULE)
    rows = cards.run(
        """
        s, r = login("1234")
        out(manufacturer=lib.manufacturer_id, result=r, signature=len(sign(s)))
        """,
        timeout=30,
        before=f"import ctypes, os; ctypes.CDLL({path!r}, mode=os.RTLD_GLOBAL | os.RTLD_NOW)\n",
    )
    assert rows == [{"manufacturer": "cps-middleware", "result": "ok", "signature": 256}]


def test_processes_racing_on_the_counter_spend_each_try_once(cards: Cards) -> None:
    """Four processes × 4 wrong PUKs on a 10-try counter: exactly 10 incorrect, 6 locked."""
    card = cards.add("c1")
    body = """
        results = []
        for _ in range(4):
            try:
                token().open(rw=True, so_pin="00000000")
            except PKCS11Error as exc:
                results.append(err(exc))
        out(results=results)
        """
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(body)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=cards.env(), stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results: list[str] = []
    for p in procs:
        stdout, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        results += json.loads(stdout.strip().splitlines()[-1])["results"]
    assert sorted(results) == ["PinIncorrect"] * 9 + ["PinLocked"] * 7
    assert ts.read(card).puk_tries_left == 0


def test_card_deleted_and_made_again_under_the_same_name(cards: Cards) -> None:
    """CpsTestCard.destroy() then create(): a process that knew the card sees the new one."""
    card = cards.add("c1")
    fresh = cards.root.parent / "fresh"
    fresh.mkdir()
    (fresh / "tokens").mkdir()
    _write_conf(fresh)
    env = {**os.environ, "SOFTHSM2_CONF": str(fresh / "softhsm2.conf")}
    init = ["softhsm2-util", "--init-token", "--free", "--label", "new", "--pin", "5678"]
    subprocess.run([*init, "--so-pin", PUK], env=env, check=True, capture_output=True)
    rows = cards.run(
        f"""
        import shutil
        from pathlib import Path
        from cps_middleware.testing import _tokenstate as ts
        card = Path({str(card)!r})
        s, r = login("1234")
        out(before=r, signature=len(sign(s)))
        shutil.rmtree(card)
        out(slots_without_card=len(lib.get_slots(token_present=True)))
        shutil.copytree({str(fresh / "tokens")!r}, card / "tokens")
        (card / "softhsm2.conf").write_text(
            f"directories.tokendir = {{card / 'tokens'}}\\nobjectstore.backend = file\\n")
        ts.create(card, ts.TokenSettings(label="new card", serial="NEW"))
        try:
            sign(s)
        except PKCS11Error as exc:
            out(old_session=err(exc))
        out(label=token().label, old_pin=login("1234")[1], new_pin=login("5678")[1])
        """
    )
    assert rows == [
        {"before": "ok", "signature": 256},
        {"slots_without_card": 0},
        {"old_session": "SessionHandleInvalid"},
        {"label": "new card", "old_pin": "PinIncorrect", "new_pin": "ok"},
    ]


def test_init_token_honours_the_puk_counter(cards: Cards) -> None:
    card = cards.add("c1", puk_tries_max=3)
    init = ("--init-token", "--label", "wiped")
    results = [cards.tool(*init, "--so-pin", "00000000").stderr for _ in range(3)]
    assert "CKR_PIN_INCORRECT" in results[0] and "CKR_PIN_INCORRECT" in results[1]
    assert "CKR_PIN_LOCKED" in results[2]
    assert ts.read(card).puk_tries_left == 0
    # the PUK is blocked: even the right one wipes nothing
    refused = cards.tool(*init, "--so-pin", PUK)
    assert refused.returncode != 0 and "CKR_PIN_LOCKED" in refused.stderr
    assert "CPS_PRIV_AUT" in cards.tool("--login", "--pin", PIN, "--list-objects").stdout


def test_token_info_and_mechanism_flags_are_a_cps3s(cards: Cards) -> None:
    from cps_middleware.cards.profiles import CPS3

    cards.add("c1", mechanisms=CPS3.test_token_mechanisms)
    rows = cards.run(
        """
        slot = pkcs11.lib(os.environ["CPS_MODULE"]).get_slots(token_present=True)[0]
        t = slot.get_token()
        out(flags=int(t.flags), hw=list(t.hardware_version), fw=list(t.firmware_version),
            mechs={int(m): int(slot.get_mechanism_info(m).flags) for m in slot.get_mechanisms()})
        """
    )
    info = rows[0]
    assert info["flags"] == CPS3.token_flags
    assert tuple(info["hw"]) == CPS3.hardware_version and tuple(info["fw"]) == CPS3.firmware_version
    assert all(flags & 0x1 for flags in info["mechs"].values())  # CKF_HW


def test_pkcs11_tool_test_signs_with_the_card_key(cards: Cards) -> None:
    from cps_middleware.cards.profiles import CPS3

    cards.add("c1", mechanisms=CPS3.test_token_mechanisms)
    out = cards.tool("--test", "--login", "--pin", PIN)
    assert out.returncode == 0, out.stdout + out.stderr
    signatures = out.stdout.split("Signatures", 1)[1].split("Verify", 1)[0]
    assert "RSA-PKCS: OK" in signatures and "SHA256-RSA-PKCS: OK" in signatures


def test_two_thousand_cards_come_and_go_in_bounded_memory_and_fds(cards: Cards) -> None:
    # Each card seen used to keep its SoftHSM copy (~840 kB) and an fd, and the
    # 256th card was never seen: a gone card's slot and instance now serve the next.
    rows = cards.run(
        f"""
        import shutil
        from pathlib import Path
        from cps_middleware.testing import _tokenstate as ts
        root, template = Path({str(cards.root)!r}), Path({str(cards.template)!r})

        def usage():
            rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            return rss, len(os.listdir("/proc/self/fd"))

        for i in range(2000):
            card = root / f"card{{i:04d}}"
            shutil.copytree(template / "tokens", card / "tokens")
            (card / "softhsm2.conf").write_text(
                f"directories.tokendir = {{card / 'tokens'}}\\nobjectstore.backend = file\\n")
            ts.create(card, ts.TokenSettings(label=f"card {{i}}", serial=f"S{{i:05d}}"))
            seen = [s.get_token().label for s in lib.get_slots(token_present=True)]
            assert seen == [f"card {{i}}"], seen
            shutil.rmtree(card)
            if i == 99:
                before = usage()
        out(before=before, after=usage(), slots=len(lib.get_slots()))
        """,
        timeout=600,
    )
    (rss0, fds0), (rss1, fds1) = rows[0]["before"], rows[0]["after"]
    assert fds1 <= fds0 + 2
    assert rss1 - rss0 < 30 * 2**20  # leaking 840 kB a card would be ~1.6 GB
    assert rows[0]["slots"] <= 2  # the freed slot was reused
