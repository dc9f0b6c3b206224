"""``python -m transferlab`` runs the command line."""

import sys

from transferlab.cli import main

sys.exit(main())
