"""`python -m msib.lab.devsim`: run the device simulator (see :mod:`msib.lab.devsim`)."""

import sys

from msib.lab.devsim.server import main

sys.exit(main())
