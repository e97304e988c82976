"""``python -m aiclassify.predict``: the predict command."""

import sys

from aiclassify.predict.cli import main

sys.exit(main())
