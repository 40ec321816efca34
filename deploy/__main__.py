"""Run the command line as `python -m deploy`."""

from deploy.cli import main

main()
