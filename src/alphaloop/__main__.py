"""``python -m alphaloop`` runs the CLI."""

import sys

from alphaloop.cli.main import main

sys.exit(main())
