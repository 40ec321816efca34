"""The built-in checks of `deploy check`: one small function per check, one module per area or layer.

A check's texts (title, why, fix, details, references) live in its `@check(...)` decorator only; its
page (`deploy explain ID`, SARIF help, the docs site) is generated from them. `ID.examples.md` beside
the modules holds a check's hand-written failing and passing example, where it has one.
"""
