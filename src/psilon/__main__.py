"""``python -m psilon``: the same command line as the ``psilon`` command."""

import sys

from psilon.cli import main

if __name__ == "__main__":
    sys.exit(main())
