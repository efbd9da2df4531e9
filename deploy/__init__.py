"""pyinfra deploys of msib's appliance roles: the same rendered bytes Ansible installs."""
