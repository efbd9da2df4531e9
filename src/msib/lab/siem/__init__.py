"""The lab SIEM: a stand-in for the Wazuh server API (v4), for the local lab and the tests.

No vendor SIEM can run in the lab, so :mod:`msib.lab.siem.api` implements, over real HTTPS, the
calls msib makes to a Wazuh manager (`shared/spec/siem.md`): JWT login with basic auth and token
expiry, `GET/POST/DELETE /agents` with Wazuh's parameters, defaults and envelopes, the CDB list
calls `GET/PUT/DELETE /lists/files/{filename}`, Wazuh's error shape and its per-minute rate limit.
It is **not** Wazuh: it does not receive agent traffic, run rules or decode events. Its one
addition, `GET /msib-lab/stats` (counters of the requests it received), is lab-only and is not
part of the Wazuh API. docs/siem.md lists every difference.

This package uses only the standard library (and msib.errors / msib.secrets), so that it runs on
the lab's SIEM host with the system's python3 (3.11 or later).
"""
