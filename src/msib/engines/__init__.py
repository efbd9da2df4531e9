"""Engine runners for `msib deploy` (pyinfra and Ansible) and the checks they share."""
