"""``python -m querybatch`` runs the CLI."""

from querybatch.cli import main

main()
