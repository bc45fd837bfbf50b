"""``python -m pgsafe``: the same command line as the ``pgsafe`` script."""

import sys

from pgsafe.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
