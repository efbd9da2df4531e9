"""testinfra checks of a converged collector on each release: observable behaviour, not copied templates."""

#: what each platform of the scenario is: its Debian release and its circuit's networks (inventories/lab)
PLATFORMS = {"col-int-1": ("bookworm", "198.18.16.0/20"), "col-ext-1": ("trixie", "198.18.32.0/20")}


def test_runs_the_release_of_its_circuit(host):
    release, _ = PLATFORMS[host.backend.get_hostname()]
    assert host.run(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip() == release


def test_rsyslog_config_parses(host):
    assert host.run("sudo /usr/sbin/rsyslogd -N1 -f /etc/rsyslog.conf").rc == 0


def test_syslog_ports_listen(host):
    for spec in ("udp://0.0.0.0:514", "tcp://0.0.0.0:514", "tcp://0.0.0.0:6514"):
        assert host.socket(spec).is_listening


def test_collector_table_accepts_only_the_circuit(host):
    _, network = PLATFORMS[host.backend.get_hostname()]
    out = host.run("sudo nft list table inet msib_collector").stdout
    assert network in out and "drop" in out


def test_key_is_private(host):
    f = host.file("/etc/msib/tls/collector.key")
    assert f.mode == 0o600 and f.user == "root"
