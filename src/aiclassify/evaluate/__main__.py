"""``python -m aiclassify.evaluate``: the evaluate command."""

import sys

from aiclassify.evaluate.cli import main

sys.exit(main())
