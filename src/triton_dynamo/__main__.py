# SPDX-License-Identifier: Apache-2.0
"""``python -m triton_dynamo``: the same as the ``triton-dynamo`` command."""

import sys

from .cli import main

sys.exit(main())
