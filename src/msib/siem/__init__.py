"""Talking to the central SIEM: a driver interface, drivers, and `msib siem sync`.

- :mod:`msib.siem.base`: the interface every SIEM driver implements (list the agents under a
  prefix, register, deregister, publish and read an object list) and the request counts.
- :mod:`msib.siem.wazuh`: the driver for the Wazuh server API (v4) over verified HTTPS.
- :mod:`msib.siem.credentials`: API credentials from the environment or an ansible-vault file.
- :mod:`msib.siem.sync`: reconcile one SB's appliances and objects with the SIEM.
"""
