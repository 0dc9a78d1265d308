"""Generate the demo's logged production traffic: a customer-support assistant, one week.

    python eval_sets/demo/generate.py        # rewrites traffic.jsonl.gz byte for byte (seeded)

Each line is what an OpenAI chat-completions proxy logs: the request, the response the production
model (gpt-4o-mini) gave, latency, timestamp and metadata (feature, tenant, session, user). The
responses are the fake provider's baseline answers, so replaying the baseline reproduces them.
Three features: `triage` (JSON with a schema), `answer` (multi-turn chat), `summarize` (handoff
notes). One line is deliberately truncated: it must land in quarantine.
"""

from __future__ import annotations

import gzip
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from evalpipe.fake.server import openai_completion

SEED = 7
HERE = Path(__file__).resolve().parent
OUT = HERE / "traffic.jsonl.gz"
START = datetime(2026, 11, 1, tzinfo=UTC)
MALFORMED_LINE = 577

TENANTS = {"acme": 30, "globex": 18, "initech": 14, "umbrella": 12, "hooli": 10, "stark": 7, "wayne": 5, "wonka": 4}
PRODUCTS = ["Pro plan", "Team plan", "wireless headphones", "standing desk", "espresso machine", "smart watch",
            "running shoes", "backpack", "monitor arm", "mechanical keyboard"]
NAMES = ["Jane Doe", "Omar Haddad", "Li Wei", "Sofia Rossi", "Ken Tanaka", "Amara Okafor", "Lucas Silva"]
ASKS = [
    "I want a refund for my {p}, it arrived broken.",
    "Why was I charged twice for the {p} this month?",
    "Can you send me the invoice for order #{o}? I need it for my accounting.",
    "I can't reset my password, the link never arrives.",
    "My login keeps failing with two-factor enabled.",
    "Where is my order #{o}? The shipping status hasn't changed in days.",
    "The delivery of my {p} is late again, this is the second time.",
    "Please cancel my subscription to the {p}, I don't use it anymore.",
    "The app shows error E-{e} every time I open the dashboard.",
    "I found a bug: exporting a report as CSV crashes the app.",
    "Your API returns 429 errors even though we are under our limit.",
    "How do I add a team member to my account?",
    "Is the {p} compatible with my older model?",
]
MOODS = ["", " This is urgent, please help ASAP.", " Thanks in advance!", " I'm really frustrated.",
         " Whenever you get a chance.", " I already contacted you about this and it's still not fixed."]
FOLLOW_UPS = ["Thanks. How long will that take?", "It still doesn't work, what else can I try?",
              "Can you check the order again? The number is #{o}.", "OK, and will I get an email confirmation?",
              "Can I talk to a human agent instead?"]

TRIAGE_SYSTEM = ("You triage customer support tickets for the helpdesk. Classify the ticket and return only "
                 "a JSON object that matches the schema: category, priority, sentiment, whether a human "
                 "agent must take over, and a one-sentence summary.")
ANSWER_SYSTEM = ("You are the support assistant of an online store and software company. Answer the customer "
                 "politely and concisely, in at most five sentences. Never ask for passwords or full card numbers.")
SUMMARY_SYSTEM = ("Summarize the conversation below for a human agent taking over the case: the problem, what "
                  "was already tried, and what the customer expects. Be brief.")
TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "account", "shipping", "technical", "other"]},
        "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
        "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "needs_human": {"type": "boolean"},
        "summary": {"type": "string"},
    },
    "required": ["category", "priority", "sentiment", "needs_human", "summary"],
    "additionalProperties": False,
}


def _ticket(rng: random.Random) -> str:
    text = rng.choice(ASKS).format(p=rng.choice(PRODUCTS), o=rng.randint(100000, 999999), e=rng.randint(100, 999))
    text += rng.choice(MOODS)
    if rng.random() < 0.15:
        name = rng.choice(NAMES)
        text += f" You can reach me at {name.lower().replace(' ', '.')}@example.com."
    if rng.random() < 0.05:
        text += f" Or call me on +1 415 555 {rng.randint(1000, 9999)}."
    return text


def _record(rng: random.Random, body: dict, when: datetime, meta: dict) -> tuple[dict, dict]:
    response = openai_completion(body)
    response["created"] = int(when.timestamp())
    latency = round(min(6000.0, rng.lognormvariate(6.75, 0.45)), 1)
    line = {
        "request": body,
        "response": response,
        "latency_ms": latency,
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "metadata": meta,
    }
    return line, response


def generate() -> list[dict]:
    rng = random.Random(SEED)
    tenants, weights = list(TENANTS), list(TENANTS.values())
    lines: list[dict] = []
    users = [f"u_{i:04d}" for i in range(420)]
    session_no = 0

    def meta(feature: str, tenant: str, session: str, user: str) -> dict:
        return {"feature": feature, "tenant": tenant, "session_id": session, "user_id": user,
                "prompt_version": "support-v6", "request_id": f"req_{len(lines):05d}"}

    def when() -> datetime:
        return START + timedelta(seconds=rng.uniform(0, 7 * 86400))

    # triage: one request per ticket
    for _ in range(500):
        session_no += 1
        tenant = rng.choices(tenants, weights)[0]
        body = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 300,
                "messages": [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": _ticket(rng)}],
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "ticket_triage", "strict": True, "schema": TRIAGE_SCHEMA}}}
        line, _ = _record(rng, body, when(), meta("triage", tenant, f"s_{session_no:05d}", rng.choice(users)))
        lines.append(line)
    # answer: multi-turn sessions, each turn logged with the conversation so far
    answered = 0
    while answered < 450:
        session_no += 1
        tenant, user = rng.choices(tenants, weights)[0], rng.choice(users)
        t = when()
        messages = [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": _ticket(rng)}]
        for _turn in range(rng.choice([1, 1, 2, 2, 3, 4])):
            if answered >= 450:
                break
            body = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 400, "messages": list(messages)}
            line, response = _record(rng, body, t, meta("answer", tenant, f"s_{session_no:05d}", user))
            lines.append(line)
            answered += 1
            messages.append({"role": "assistant", "content": response["choices"][0]["message"]["content"]})
            messages.append({"role": "user", "content": rng.choice(FOLLOW_UPS).format(o=rng.randint(100000, 999999))})
            t += timedelta(seconds=rng.uniform(30, 600))
    # summarize: handoff notes of a conversation transcript
    for _ in range(250):
        session_no += 1
        tenant = rng.choices(tenants, weights)[0]
        transcript = "\n".join(f"Customer: {_ticket(rng)}\nAssistant: I'm looking into it." for _ in range(rng.randint(1, 3)))
        body = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 250,
                "messages": [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": transcript}]}
        line, _ = _record(rng, body, when(), meta("summarize", tenant, f"s_{session_no:05d}", rng.choice(users)))
        lines.append(line)
    lines.sort(key=lambda r: r["timestamp"])
    return lines


def write(lines: list[dict], path: Path = OUT) -> None:
    buf = io.BytesIO()
    for i, line in enumerate(lines, start=1):
        data = orjson.dumps(line)
        if i == MALFORMED_LINE:
            buf.write(data[: len(data) // 2] + b"\n")  # a log line cut off mid-write
        buf.write(data + b"\n")
    with path.open("wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())


if __name__ == "__main__":
    records = generate()
    write(records)
    print(f"wrote {len(records)} records + 1 malformed line to {OUT} ({OUT.stat().st_size:,} bytes)")
