"""Many state bodies: the fleet on disk, its inventories, rollouts in waves, status and the quarterly report.

- :mod:`msib.fleet.model`: ``fleet.yml``, the SB directories, the rules across SBs (docs/fleet.md);
- :mod:`msib.fleet.build`: every SB's inventory, a broken SB reported and skipped;
- :mod:`msib.fleet.waves` and :mod:`msib.fleet.actions`: deploy, update and check in waves, resumable;
- :mod:`msib.fleet.status`: per SB what was built, deployed, checked and heard; health of the fleet;
- :mod:`msib.fleet.quarterly`: the quarterly report to the KNB (§13 of the Rules).
"""
