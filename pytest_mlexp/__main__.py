"""``python -m pytest_mlexp``: the same as the ``mlexp`` command."""

import sys

from .cli import main

sys.exit(main())
