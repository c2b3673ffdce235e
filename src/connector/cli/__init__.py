"""The click commands of the ``connector`` console script."""
