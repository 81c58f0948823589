"""The historian's dead letters: a refused message as a JSON record that can always be stored and published.

A record holds the topic, the reason (a short `reason_code` and a bounded text), the time, and the payload: as
text when it is valid UTF-8, otherwise as base64 (`payload_base64`), so bytes that are not text, and text with lone
surrogates (which no UTF-8 encoder accepts), never make the record itself unstorable.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

# A reason quotes the payload (a validation error names the bad value); the record must not grow with it.
REASON_MAX_CHARS = 1000


def safe_text(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars`, with anything UTF-8 cannot carry (lone surrogates) written as an escape."""
    cut = text[:max_chars] + ("..." if len(text) > max_chars else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter_record(topic: str, payload: bytes, reason_code: str, reason: str, received_at: datetime) -> bytes:
    record: dict[str, str] = {
        "topic": safe_text(topic, REASON_MAX_CHARS),
        "reason": safe_text(reason, REASON_MAX_CHARS),
        "reason_code": reason_code,
        "received_at": received_at.isoformat(),
    }
    try:
        record["payload"] = payload.decode("utf-8")  # strict: lone surrogates and bad bytes go as base64
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(record, ensure_ascii=False).encode("utf-8")
