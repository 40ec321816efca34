"""Rendering: the files a host runs (nginx, systemd, gunicorn) from a validated Config, and the CSP."""
