"""testinfra checks of a converged firewall on each release."""

#: the Debian release of each platform of the scenario (inventories/lab/site.yml)
RELEASES = {"fw-int-1": "bookworm", "fw-ext-1": "trixie"}


def test_runs_the_release_of_its_circuit(host):
    release = RELEASES[host.backend.get_hostname()]
    assert host.run(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip() == release


def test_management_path_is_the_first_input_rule(host):
    out = host.run("sudo nft list chain inet msib input").stdout
    # rules only: the chain's own header line ("type filter hook input ...; policy drop;") is no rule
    rules = [line.strip() for line in out.splitlines()
             if ("accept" in line or "drop" in line) and not line.strip().startswith("type ")]
    assert "msib management path" in rules[0]


def test_ruleset_is_confirmed_and_persisted(host):
    assert host.run("sudo /usr/local/sbin/msib-nft-commit status").stdout.strip() == "applied"
    assert host.run("sudo cmp /etc/msib/firewall/ruleset.nft /etc/nftables.conf").rc == 0


def test_containment_set_has_timeouts_in_its_own_table(host):
    assert "timeout" in host.run("sudo nft list set inet msib_contain msib_blocked").stdout
    # containment's chains accept the management path before they drop anything
    out = host.run("sudo nft list chain inet msib_contain input").stdout
    rules = [line.strip() for line in out.splitlines()
             if ("accept" in line or "drop" in line) and not line.strip().startswith("type ")]
    assert "msib management path" in rules[0]
