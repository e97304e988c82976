"""``python -m aiclassify.train``: the train command."""

import sys

from aiclassify.train.cli import main

sys.exit(main())
