"""``python -m relay`` is ``stock-relay``."""

import sys

from .cli import main

sys.exit(main())
