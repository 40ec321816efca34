"""The built-in checks of `deploy check`: one small function per check, one module per area or layer."""
