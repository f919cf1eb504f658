"""``python -m edgepeft`` runs the command line."""

from edgepeft.cli import main

main()
