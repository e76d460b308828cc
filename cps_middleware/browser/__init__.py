"""The CPS card in the browser: register the PKCS#11 middleware with Chromium and Firefox.

``setup`` registers the module (the ANS Cryptolib CPS, else OpenSC, or the one
given) and imports the IGC-Santé CA certificates; ``status`` says, per browser
and profile, what is registered and whether it loads; ``remove`` undoes exactly
what ``setup`` did (recorded in a small JSON manifest, ``cps-middleware-browser.json``,
beside the database).

Where, and why so:

* **Chromium** reads one per-user NSS database, ``~/.pki/nssdb`` (``sql:``
  format), for every ``--user-data-dir``. The module is written there with
  ``modutil`` (libnss3-tools), not p11-kit: Debian's Chromium does not read
  p11-kit's module registry (``/etc/pkcs11/modules``) unless p11-kit-proxy is
  itself registered in that same NSS database, and ``modutil`` both checks
  that the module loads before adding it and is what NSS documents for this.
* **Firefox**: the module goes into each profile's own NSS database
  (``pkcs11.txt`` via ``modutil``), which is what the "Security Devices → Load"
  button writes. It survives restarts and updates, needs no extension and no
  root, and concerns only that user's profiles. A ``policies.json``
  ``SecurityDevices`` entry would be machine-wide, need root, and is known to
  fail in some roll-outs; it is not used.
* **System-wide** (only on request, `p11kit_setup`): a p11-kit ``.module``
  file, for p11-kit consumers; ``root`` lets tests use a throw-away tree.
* The IGC-Santé CA certificates (package data of `cps_middleware.validation`)
  are imported *without trust flags*: they let the browser build and send the
  client chain, they do not become trust anchors for web sites.

A database that a running browser holds open is never edited: `users` finds
the processes (open ``cert9.db``/``key4.db``, Firefox's profile lock) and the
target is refused (`BrowserRunning`, or ``Outcome.REFUSED_RUNNING`` per item).
"""

from __future__ import annotations

from cps_middleware.browser._core import (
    MANIFEST,
    MODULE_NAME,
    ModuleChoice,
    ModuleStatus,
    Outcome,
    TargetResult,
    TargetStatus,
    find_module,
    igc_sante_certificates,
    remove,
    remove_target,
    setup,
    setup_target,
    status,
    target_status,
)
from cps_middleware.browser._nss import NssDb, SlotToken
from cps_middleware.browser._p11kit import module_file, p11kit_remove, p11kit_setup, p11kit_status
from cps_middleware.browser._targets import (
    Browser,
    DbUser,
    Target,
    chromium_target,
    find_targets,
    firefox_profiles,
    users,
)

__all__ = [
    "MANIFEST",
    "MODULE_NAME",
    "Browser",
    "DbUser",
    "ModuleChoice",
    "ModuleStatus",
    "NssDb",
    "Outcome",
    "SlotToken",
    "Target",
    "TargetResult",
    "TargetStatus",
    "chromium_target",
    "find_module",
    "find_targets",
    "firefox_profiles",
    "igc_sante_certificates",
    "module_file",
    "p11kit_remove",
    "p11kit_setup",
    "p11kit_status",
    "remove",
    "remove_target",
    "setup",
    "setup_target",
    "status",
    "target_status",
    "users",
]
