"""Native parts of cps-middleware.

Native code are built against the system OpenSSL 3 (libssl-dev):

* ``cps_middleware._bridge`` — a CPython extension (the OpenSSL provider bridge
  that lets ``ssl.SSLContext`` sign with a key kept on the card);
* ``cps_middleware._verify`` — a CPython extension that verifies a batch of
  certificate/CRL signatures with the GIL released, across threads;
* ``cps_middleware/_cpstoken.so`` — a plain shared library, the CPS test-token
  PKCS#11 module that any PKCS#11 consumer can load. It does not link Python;
* ``cps_middleware/_ifdpinpad.so`` — a plain shared library, a pcscd reader
  driver for the test bench: a virtual reader with a PIN pad.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
PLAIN_LIBRARIES = {"cps_middleware._cpstoken", "cps_middleware._ifdpinpad"}


def _sources(folder: str) -> list[str]:
    return sorted(str(p.relative_to(HERE)) for p in (HERE / "native" / folder).glob("*.c"))


class BuildExt(build_ext):
    """build_ext that also builds plain shared libraries (no Python ABI tag)."""

    def get_ext_filename(self, fullname: str) -> str:
        # --inplace asks with the last part of the name only ("_cpstoken").
        short = {n.rsplit(".", 1)[1] for n in PLAIN_LIBRARIES}
        if fullname in PLAIN_LIBRARIES or fullname in short:
            return str(Path(*fullname.split("."))) + ".so"
        return str(super().get_ext_filename(fullname))

    def get_export_symbols(self, ext: Extension) -> list[str]:
        if ext.name in PLAIN_LIBRARIES:
            return list(ext.export_symbols or [])
        return list(super().get_export_symbols(ext))


common = {"extra_compile_args": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=c11"]}

extensions = [
    Extension(
        "cps_middleware._bridge",
        sources=_sources("bridge"),
        libraries=["ssl", "crypto"],
        **common,
    ),
    Extension(
        "cps_middleware._verify",
        sources=_sources("verify"),
        libraries=["crypto", "pthread"],
        **common,
    ),
    Extension(
        "cps_middleware._cpstoken",
        sources=_sources("cpstoken"),
        include_dirs=["native/cpstoken"],
        libraries=["dl", "pthread"],
        **common,
    ),
    Extension(
        "cps_middleware._ifdpinpad",
        sources=_sources("pinpad"),
        libraries=["pthread"],
        **common,
    ),
]

# A native part whose folder holds no C source yet is simply not built.
extensions = [ext for ext in extensions if ext.sources]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
