"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec v1).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; each signature is
`v1,` + base64(HMAC-SHA256(secret bytes, content)); during a secret rotation the header
carries one signature per valid secret, space-separated. Signing is the `standardwebhooks`
library's own, so a receiver using it (or any conforming verifier) accepts what we send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def signature_header(msg_id: str, timestamp_s: int, body: str, secrets: Sequence[str]) -> str:
    """The `webhook-signature` value: `v1,<sig>` per secret, newest secret first."""
    when = datetime.fromtimestamp(timestamp_s, tz=UTC)
    return " ".join(Webhook(secret).sign(msg_id, when, body) for secret in secrets)


def signed_headers(
    msg_id: str, timestamp_s: int, body: str, secrets: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers and the content type for one delivery."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature_header(msg_id, timestamp_s, body, secrets),
        "content-type": "application/json",
        "user-agent": "Conveyor-Webhooks/1",
    }
