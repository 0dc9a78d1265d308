"""Write canary.jsonl.gz: 3,000 logged requests of a 3-step ramp (seeded).

Users are split between cohort A (production) and B (the candidate) by a hash; from the start of
step 3 the candidate breaks JSON on 40% more answers, so the ramp should roll back at step 3.
"""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

START = datetime(2026, 11, 1, tzinfo=UTC)
BROKEN_FROM = datetime(2026, 11, 2, 8, tzinfo=UTC)


def main() -> None:
    rng = random.Random(3)
    lines = []
    for i in range(3000):
        user = f"u{rng.randrange(900)}"
        variant = "B" if int(user[1:]) % 2 else "A"
        when = START + timedelta(minutes=i)
        broken = variant == "B" and when >= BROKEN_FROM and rng.random() < 0.4
        ok = not broken and rng.random() >= 0.05
        content = '{"category": "billing"}' if ok else 'Sure! {"category": '
        lines.append(
            {
                "request": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"ticket {i}"}],
                },
                "response": {
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
                },
                "latency_ms": round(500 + rng.random() * 300, 1),
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "metadata": {"variant": variant, "user_id": user},
            }
        )
    out = Path(__file__).with_name("canary.jsonl.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))


if __name__ == "__main__":
    main()
