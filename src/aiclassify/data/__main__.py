"""``python -m aiclassify.data``: the same as ``aiclassify data``."""

import sys

from aiclassify.data.cli import main

sys.exit(main())
