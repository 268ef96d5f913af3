"""Repository tools run with ``python -m tools.<name>``; not part of the installed package."""
