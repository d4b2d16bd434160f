"""``python -m fastann.experiments``: the same as ``fastann experiments``."""
import sys

from . import main

sys.exit(main())
