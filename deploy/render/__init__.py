"""Rendering: the files a host runs (nginx, systemd, gunicorn, Docker) from a validated Config."""
