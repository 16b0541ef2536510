"""Makes the parametrised `store_under_test` fixture (store_support.py) visible to the suite."""

from .store_support import store_under_test

__all__ = ["store_under_test"]
