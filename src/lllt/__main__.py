"""``python -m lllt``: the same as the ``lllt`` command."""

from lllt.cli import main

main()
