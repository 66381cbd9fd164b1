"""``python -m confide`` runs the CLI (what the ``confide`` script runs)."""

from .interfaces.cli import main

main()
