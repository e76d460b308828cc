"""``python -m cps_middleware.cli``: the ``cps`` command."""

import sys

from cps_middleware.cli import main

sys.exit(main())
