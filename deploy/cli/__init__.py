"""The `deploy` command line: parsing and printing only; the work happens in the modules it calls.

This is `main`, the only importer of the command modules; they share what they need through `common`.
"""

from __future__ import annotations

import click

from deploy import __version__
from deploy.cli import check, config, jobs, lock, push, sandbox, services, status, tls
from deploy.cli.common import Main


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deploy")
def main() -> None:
    """Take a Python web app from your laptop to production servers, and keep it honest there.

    One deploy.yaml describes the app and where it runs. Start with 'deploy init' in a Flask
    project, then 'deploy render' and 'deploy check'.
    """


for _module in (config, check, sandbox, push, status, lock, services, jobs, tls):
    for _command in _module.COMMANDS:
        main.add_command(_command)
