"""Sandbox hosts for the pyinfra deploy: addresses and SSH settings come from the benchmark's environment."""

import os

web = [
    (
        address,
        {
            "ssh_user": "root",
            "ssh_key": os.environ["SSH_KEY"],
            "ssh_known_hosts_file": os.environ["SSH_KNOWN_HOSTS"],
            "ssh_strict_host_key_checking": "yes",
        },
    )
    for address in os.environ["HOSTS"].split()
]
