"""HTTPS: the certificate steps, ACME and own certificates."""
