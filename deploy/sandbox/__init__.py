"""The sandbox: local hosts (systemd-nspawn machines), their root filesystem, network and ACME server."""
