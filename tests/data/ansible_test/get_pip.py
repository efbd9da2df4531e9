"""Offline stand-in for ansible-test's get-pip.py: bundled pip (ensurepip), then the pinned pip from the local index."""

import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
