"""``python -m aiclassify <command>``: the same as the ``aiclassify`` console script."""

import sys

from aiclassify.cli import main

sys.exit(main())
