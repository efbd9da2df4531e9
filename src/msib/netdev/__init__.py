"""Vendor firewalls over SSH with netmiko: backup, logging to the collector, checks, containment.

For firewalls whose site-plan `platform` is a netmiko device_type (``cisco_ios`` today): the
device (:mod:`.device`), its configuration as canonical text (:mod:`.ioscfg`) and the lines a
desired state needs (:mod:`.lines`), first contact (:mod:`.hostkeys`), the firewalls of an
inventory (:mod:`.view`) and `msib device`'s runner (:mod:`.runner`). Credentials are
:class:`~msib.secrets.Secret` values from the environment or an ansible-vault file.
"""

from msib.netdev.device import NetDevice
from msib.netdev.hostkeys import scan_host_key, trust_host_key
from msib.netdev.lines import block_lines, blocked_networks, logging_lines, unblock_lines
from msib.netdev.model import (
    CONTAIN_ACL,
    CONTAIN_PERMIT,
    CONTAIN_PERMIT_SEQ,
    DEFAULT_BACKUP_DIR,
    ENV_ENABLE,
    ENV_PASSWORD,
    ENV_USERNAME,
    IOS_ERROR_PATTERN,
    SUPPORTED_PLATFORMS,
    BackupResult,
    ChangeResult,
    CheckResult,
    ConfigRejected,
    DeviceAuthError,
    DeviceCredentials,
    DeviceTarget,
    DeviceTimeout,
    DeviceUnreachable,
    HostKey,
    HostKeyError,
    HostKeyMismatch,
    HostKeyUnknown,
    LoggingTarget,
    default_backup_dir,
)
from msib.netdev.view import NetdevInventory

__all__ = [
    "CONTAIN_ACL", "CONTAIN_PERMIT", "CONTAIN_PERMIT_SEQ", "DEFAULT_BACKUP_DIR", "ENV_ENABLE", "ENV_PASSWORD",
    "ENV_USERNAME", "IOS_ERROR_PATTERN", "SUPPORTED_PLATFORMS", "BackupResult", "ChangeResult", "CheckResult",
    "ConfigRejected", "DeviceAuthError", "DeviceCredentials", "DeviceTarget", "DeviceTimeout", "DeviceUnreachable",
    "HostKey", "HostKeyError", "HostKeyMismatch", "HostKeyUnknown", "LoggingTarget", "NetDevice", "NetdevInventory",
    "block_lines", "blocked_networks", "default_backup_dir", "logging_lines", "scan_host_key", "trust_host_key",
    "unblock_lines",
]
