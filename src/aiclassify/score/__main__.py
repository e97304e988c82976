"""``python -m aiclassify.score``: the score command."""

import sys

from aiclassify.score.cli import main

sys.exit(main())
