"""deploy: take a Python web app from a laptop to production servers, and keep it honest there."""

__version__ = "0.1.0"
