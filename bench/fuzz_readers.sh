#!/usr/bin/env bash
# The long fuzz run of the readers (#14): 10,000+ generated inputs through the whole build, each
# either a complete inventory or one InputError line, never a traceback or a partial output.
#
#   bench/fuzz_readers.sh [EXAMPLES_PER_STRATEGY]      # default 1700: 6 reader strategies -> 10,200 inputs
#
# New inputs each run (MSIB_FUZZ_RANDOM=1); the unit suite runs a fixed set of about 800.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1700}"
start=$(date +%s)
MSIB_FUZZ_EXAMPLES="$n" MSIB_FUZZ_RANDOM=1 .venv/bin/python -m pytest -p no:cacheprovider -q -s \
  -m 'not bench' tests/test_fuzz_readers.py 2>&1 | grep -E 'fuzz_readers:|passed|failed|Falsifying|assert|Error' | tail -12
echo "fuzz_readers: $(( $(date +%s) - start )) s"
