"""``python -m sellakit``: the command line (see sellakit.cli)."""

import sys

from sellakit.cli import main

sys.exit(main())
