"""``python -m panthor_testbed.fuzz`` is the panthor-testbed command."""

import sys

from .cli import main

sys.exit(main())
