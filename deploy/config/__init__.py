"""Configuration: the typed model of deploy.yaml, its loading and validation, secrets and redaction."""
