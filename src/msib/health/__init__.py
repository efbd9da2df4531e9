"""Health driven by the inventory: every appliance and object it expects, last heard, rate, silent or not.

- :mod:`msib.health.config`: thresholds per source class, the rate window, the baseline;
- :mod:`msib.health.probe`: the collectors' per-sender counters and spool, the sensors, the SIEM;
- :mod:`msib.health.assess`: judging each source; :mod:`msib.health.model`: what a result holds;
- :mod:`msib.health.history`: the last result, baselines and silent periods beside the inventory;
- :mod:`msib.health.run`: one run over an inventory;
- :mod:`msib.health.prometheus`, :mod:`msib.health.exporter`, :mod:`msib.health.page`: where people look;
- :mod:`msib.health.timer`: the systemd timer that runs it every few minutes.
"""
