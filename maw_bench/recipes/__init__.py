"""Recipes shipped with the package (the built-in smoke run), read with ``importlib.resources``."""
