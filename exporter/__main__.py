"""`python -m exporter` does what the `aep-flow-exporter` console script does."""

import sys

from exporter.cli.main import main

sys.exit(main())
