"""``python -m bertbridge``: the ``bertbridge`` command (for images and environments without the console script)."""

import sys

from bertbridge.core.cli import main

if __name__ == "__main__":
    sys.exit(main())
