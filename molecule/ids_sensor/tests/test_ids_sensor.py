"""testinfra checks of a converged IDS sensor on each release (Suricata 7 on Debian 12, 8 on Debian 13)."""

#: each platform of the scenario: its Debian release, Suricata major and circuit (inventories/lab/site.yml)
PLATFORMS = {"ids-int-1": ("bookworm", "7", "198.18.16.0/20"), "ids-ext-1": ("trixie", "8", "198.18.32.0/20")}


def test_runs_the_release_and_the_suricata_of_its_plan(host):
    release, major, _ = PLATFORMS[host.backend.get_hostname()]
    assert host.run(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip() == release
    assert f"version {major}." in host.run("/usr/bin/suricata -V").stdout


def test_suricata_config_and_rules_pass_the_test_mode(host):
    assert host.run("sudo /usr/bin/suricata -T -c /etc/suricata/suricata.yaml").rc == 0


def test_suricata_and_rsyslog_run(host):
    assert host.service("suricata").is_running and host.service("rsyslog").is_running


def test_home_net_is_the_circuit(host):
    _, _, network = PLATFORMS[host.backend.get_hostname()]
    assert f'HOME_NET: "[{network}]"' in host.file("/etc/suricata/suricata.yaml").content_string
