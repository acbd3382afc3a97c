"""The load generator's tests use the real stack of tests/conftest.py (``file_stack``)."""
