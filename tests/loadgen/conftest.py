# SPDX-License-Identifier: Apache-2.0
"""The load generator's tests use the real stack of tests/conftest.py (``file_stack``)."""
