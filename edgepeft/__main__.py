"""``python -m edgepeft`` runs the command line."""

from edgepeft.cli.root import main

main()
