"""`python -m pipeline.cli`: the `finsent` console script without the installed entry point."""

import logging
import sys

from pipeline.cli.main import main

logging.captureWarnings(True)
sys.exit(main())
