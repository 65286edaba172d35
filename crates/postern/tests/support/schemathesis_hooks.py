"""Schemathesis hooks for Postern's API: POST /v1/feedback/raw takes a message as
message/rfc822, which schemathesis has no serializer for; send the generated text as bytes."""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("message/rfc822")
def rfc822(ctx, value):
    return {"data": serialize_binary(value)}
