"""``python -m funbat.cli``: the ``funbat`` command."""

import sys

from . import main

sys.exit(main())
