"""Configuration: the typed model of deploy.yaml (and its CSP values), loading, errors, secrets."""
