"""The checker: layers and context, registry and runner, suppressions, formats, the live probe, linters."""
