# SPDX-License-Identifier: Apache-2.0
"""The packaged copy of ``loadtest/locustfile.py``, for ``triton-dynamo loadtest`` when the package was installed
without its repository. Locust loads it by path (as a top-level module), so it uses absolute imports only; nothing
in the package imports it.
"""

from triton_dynamo.loadgen.locust_user import KServeUser, SelectedShape

__all__ = ["KServeUser", "SelectedShape"]
