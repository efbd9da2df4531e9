"""testinfra checks of a converged collector: observable behaviour, not copied templates."""


def test_rsyslog_config_parses(host):
    assert host.run("sudo /usr/sbin/rsyslogd -N1 -f /etc/rsyslog.conf").rc == 0


def test_syslog_ports_listen(host):
    for spec in ("udp://0.0.0.0:514", "tcp://0.0.0.0:514", "tcp://0.0.0.0:6514"):
        assert host.socket(spec).is_listening


def test_collector_table_accepts_only_the_circuit(host):
    out = host.run("sudo nft list table inet msib_collector").stdout
    assert "198.18.16.0/20" in out and "drop" in out


def test_key_is_private(host):
    f = host.file("/etc/msib/tls/collector.key")
    assert f.mode == 0o600 and f.user == "root"
