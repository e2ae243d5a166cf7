"""``python -m hospes``: the same as the ``hospes`` command."""

import sys

from .cli import main

sys.exit(main())
