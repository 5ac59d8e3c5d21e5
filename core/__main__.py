"""`python -m core` is `vf-bridge`."""

import sys

from core.cli import main

sys.exit(main())
