"""``python -m mirtag``: the ``mirtag`` command."""

from mirtag.cli.main import main

main()
