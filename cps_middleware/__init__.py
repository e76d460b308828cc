"""cps-middleware: French health-professional smart cards (CPS) from Python."""

from cps_middleware.errors import CpsError

__version__ = "0.1.0"

__all__ = ["CpsError", "__version__"]
