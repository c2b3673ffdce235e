"""``python -m connector`` is the ``connector`` console script."""

from connector.cli.main import main

main()
