"""``python -m edgepeft`` runs the command line."""

from edgepeft.cli.app import main

main()
