"""netproto_twisted: the Internet protocols of Python's standard library on Twisted."""

__version__ = "0.1.0"

__all__ = ["__version__"]
