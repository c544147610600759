"""`python -m tfunite.tools.compat`: the same as `tfunite compat`."""

import sys

from .cli import main

sys.exit(main())
