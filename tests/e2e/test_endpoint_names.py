# SPDX-License-Identifier: Apache-2.0
"""Each model's Dynamo endpoint is named as Dynamo's own Triton worker (``dynamo.triton``) names it, read from the
discovery records a running stack wrote."""

from __future__ import annotations

import urllib.parse

from dynamo.triton.util import endpoint_slug as dynamo_endpoint_slug

from .processes import SAMPLE_MODELS, StackProcess


def test_every_model_is_registered_under_dynamos_endpoint_name(file_stack: StackProcess) -> None:
    records = [urllib.parse.unquote(str(p.relative_to(file_stack.state_dir))) for p in file_stack.state_dir.rglob("*")]
    text = "\n".join(records)
    missing = [model for model in SAMPLE_MODELS if f"/{dynamo_endpoint_slug(model)}" not in text]
    assert not missing, (missing, records[:20])
