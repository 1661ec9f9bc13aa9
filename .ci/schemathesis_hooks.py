"""Hooks for the contract fuzz run (.ci/contract).

Idempotency keys: the generator reuses simple values ("0", "a") across
cases with different bodies, and the server rightly refuses a key reused
with another body (422, ARCHITECTURE invariant 5). That is state between
requests, not a property of one request's shape, so each generated key is
made unique while keeping the generated value as its prefix (and within
the documented pattern: 1..=255 visible ASCII).
"""
import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = f"{headers[name][:200]}-{uuid.uuid4()}"
