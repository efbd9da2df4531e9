"""testinfra checks of a converged IDS sensor."""


def test_suricata_config_and_rules_pass_the_test_mode(host):
    assert host.run("sudo /usr/bin/suricata -T -c /etc/suricata/suricata.yaml").rc == 0


def test_suricata_and_rsyslog_run(host):
    assert host.service("suricata").is_running and host.service("rsyslog").is_running


def test_home_net_is_the_circuit(host):
    assert 'HOME_NET: "[198.18.16.0/20]"' in host.file("/etc/suricata/suricata.yaml").content_string
