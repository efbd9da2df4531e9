"""Compliance checks of the appliances: the catalogue, the parsers the checks use, the runner (`msib check`)."""

from msib.checks.catalogue import (
    CHECKED_ROLES,
    ID_RE,
    SEVERITIES,
    CheckRole,
    CheckRunError,
    CheckSpec,
    Outcome,
    Severity,
    applies,
    catalogue,
    check,
    checks_dir,
    checks_for,
    implemented_ids,
    validate_registry,
)
from msib.checks.parsers import (
    WEAK_SSH,
    apt_policy,
    nft_base_chains,
    nft_comparable,
    parse_sshd_t,
    pending_upgrades,
    rsyslog_action,
    rsyslog_action_queue,
    rsyslog_global,
    ruleset_header,
    suricata_time,
    unified_diff,
    weak_ssh_algorithms,
)
from msib.checks.runner import (
    DEFAULT_WORKERS,
    HOST_TIMEOUT_S,
    RESULT_PREFIX,
    CheckResult,
    CheckRun,
    load,
    result_line,
    run_checks,
)

__all__ = [
    "CHECKED_ROLES", "DEFAULT_WORKERS", "HOST_TIMEOUT_S", "ID_RE", "RESULT_PREFIX", "SEVERITIES", "WEAK_SSH",
    "CheckResult", "CheckRole", "CheckRun", "CheckRunError", "CheckSpec", "Outcome", "Severity", "applies",
    "apt_policy", "catalogue", "check", "checks_dir", "checks_for", "implemented_ids", "load", "nft_base_chains",
    "nft_comparable", "parse_sshd_t", "pending_upgrades", "result_line", "rsyslog_action", "rsyslog_action_queue",
    "rsyslog_global", "ruleset_header", "run_checks", "suricata_time", "unified_diff", "validate_registry",
    "weak_ssh_algorithms",
]
