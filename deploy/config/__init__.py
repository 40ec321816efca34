"""Configuration: the typed model of deploy.yaml (with its CSP values), loading, errors, secrets, redaction."""
