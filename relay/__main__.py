"""``python -m relay`` is ``stock-relay``."""

import sys

from .cli.main import main

sys.exit(main())
