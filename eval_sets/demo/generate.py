"""Write the demo's logged production traffic: `python eval_sets/demo/generate.py`.

A customer-support assistant behind gpt-4o-mini, one week (2026-11-01 .. 2026-11-07), eight
tenants of uneven size, in OpenAI chat-completions log form, one JSON object per line:

    {"request": {...}, "response": {chat.completion}, "latency_ms", "timestamp", "metadata"}

Three features share each support session: `triage` (JSON with a strict schema), `answer`
(multi-turn: later turns carry the earlier ones) and `summarize` (a handoff note for a human
agent). Each logged response is exactly what the fake provider's baseline answers to that request,
so replaying the baseline reproduces production. Line 577 is a torn write (truncated JSON) that
ingest must quarantine. Seeded and written with gzip mtime 0: every run gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import math
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from evalpipe.fake import openai_response  # noqa: E402

OUT: Final = HERE / "traffic.jsonl.gz"
SEED: Final = 20261101
START: Final = datetime(2026, 11, 1, tzinfo=UTC)
DAYS: Final = 7
N_SESSIONS: Final = 500
N_ANSWER: Final = 450
N_SUMMARIZE: Final = 250
TORN_LINE: Final = 577
PROMPT_VERSION: Final = "support-v6"
MODEL: Final = "gpt-4o-mini"

# The triage feature's structured-output schema, one file read by this script, the tests and benches.
TRIAGE_SCHEMA: Final[dict[str, Any]] = orjson.loads(
    (Path(__file__).with_name("triage.schema.json")).read_bytes()
)

# tenant: (display name, share of traffic, products)
TENANTS: Final[dict[str, tuple[str, float, tuple[str, ...]]]] = {
    "acme": ("Acme Corp", 0.23, ("Anvil Pro", "Rocket Skates", "Acme Cloud Backup")),
    "globex": ("Globex", 0.17, ("Globex CRM", "Globex Analytics")),
    "initech": ("Initech", 0.13, ("TPS Reporter", "Initech Payroll")),
    "umbrella": ("Umbrella Health", 0.11, ("Umbrella Clinic app", "Vitals Band")),
    "hooli": ("Hooli", 0.10, ("HooliMail", "Hooli Nucleus")),
    "stark": ("Stark Industries", 0.09, ("StarkPad", "Arc Home Hub")),
    "wayne": ("Wayne Enterprises", 0.09, ("Wayne Secure", "WayneTech Drive")),
    "wonka": ("Wonka", 0.08, ("Golden Ticket membership", "Wonka Bar gift box")),
}

TICKETS: Final[dict[str, tuple[str, ...]]] = {
    "refund": (
        "I was charged twice for order #{order} and I'd like a refund for the duplicate payment.",
        "I sent the {product} back two weeks ago and still haven't received my refund.",
        "Can I get a refund for my {product} subscription? I only used it for two days.",
        "Please refund order #{order}, I cancelled it before it shipped.",
    ),
    "charge": (
        "There's a charge of ${amount} on my card from {tenant} that I don't recognise.",
        "Why was I billed ${amount} this month? My plan should be cheaper than that.",
        "My card was declined when I tried to pay for the {product}, but it works everywhere else.",
    ),
    "invoice": (
        "I need an invoice for order #{order} with our company VAT number on it.",
        "Where can I download the receipts for the last three months?",
        "The invoice for {month} has the wrong billing address, can you fix it?",
    ),
    "cancel": (
        "Please cancel my {product} subscription at the end of this month.",
        "How do I cancel? I can't find the option anywhere in the app.",
        "I want to downgrade from the Business plan to the Starter plan.",
    ),
    "password": (
        "I reset my password but the reset link says it has expired.",
        "I never received the password reset email, I've tried three times now.",
        "How do I change my password in the {product} app?",
    ),
    "login": (
        "I can't log in to {product}, it keeps saying my session has expired.",
        "I'm locked out after entering the wrong 2FA code too many times.",
        "Sign in with Google stopped working for our whole team today.",
    ),
    "account": (
        "How do I change the email address on my account to {email}?",
        "Can you add two more seats to our team? We have new hires starting on {weekday}.",
        "I'd like to transfer the account ownership to my colleague {name}.",
    ),
    "shipping": (
        "Where is my order #{order}? The tracking page hasn't updated since {weekday}.",
        "Has order #{order} shipped yet? I ordered the {product} on {weekday}.",
        "The tracking number for my parcel doesn't work on the carrier's website.",
    ),
    "delivery": (
        "My order #{order} is late, it was supposed to arrive on {weekday}.",
        "The {product} still hasn't arrived and it's been {days} days.",
        "Delivery was delayed again. I need the {product} before the weekend.",
    ),
    "damaged": (
        "The {product} arrived damaged, the box was crushed and the screen is cracked.",
        "Order #{order} came with a missing part, there's no charger in the box.",
    ),
    "return": (
        "I ordered the wrong size, can I exchange it for a larger one?",
        "How do I return the {product}? It isn't what I expected.",
    ),
    "api": (
        "Our integration gets 429 errors from the API since this morning, about {n} requests a minute.",
        "Webhooks stopped arriving at our endpoint yesterday. Did something change on your side?",
        "The API token expired and I can't find where to create a new one.",
    ),
    "crash": (
        "The {product} app crashes every time I open the settings page.",
        "The desktop app freezes when I upload files larger than 20 MB.",
    ),
    "bug": (
        "I get an error 'Something went wrong (E{code})' when I try to export my data to CSV.",
        "The sync between {product} and my calendar is not working since the last update.",
        "Search doesn't work anymore in {product}, it just shows a blank page.",
    ),
    "other": (
        "Do you offer a discount for non-profits?",
        "Is {product} available in Canada?",
        "Can I change the language of the app to German?",
        "What are your support hours over the holidays?",
    ),
}
TOPIC_WEIGHTS: Final = {
    "refund": 10, "charge": 7, "invoice": 6, "cancel": 6, "password": 8, "login": 8, "account": 5,
    "shipping": 11, "delivery": 8, "damaged": 4, "return": 4, "api": 5, "crash": 4, "bug": 7,
    "other": 5,
}  # fmt: skip
MOODS: Final = (
    "This is urgent, we can't work without it.",
    "I need this fixed ASAP.",
    "This is the third time I'm writing about this!",
    "I'm really frustrated with this.",
    "Honestly, this is unacceptable.",
    "No rush, just wondering.",
    "If this isn't sorted out I'll file a chargeback.",
    "Can I speak to a real person, please?",
    "Thanks in advance!",
    "Love the product otherwise.",
)
FOLLOW_UPS: Final = (
    "It still doesn't work, I tried that already.",
    "How long will that take?",
    "Thanks, that worked!",
    "Can you also send me the invoice for that?",
    "OK. Will I get an email when it's done?",
    "That didn't help. Can I talk to a real person?",
    "Great, thank you for the quick help.",
    "I checked my spam folder and there's nothing there.",
    "The order number is #{order}, if that helps.",
    "Is there anything I need to do on my side?",
    "I'm still waiting, nothing has changed since yesterday.",
    "Sorry, one more thing: where do I find my invoices?",
)
GREETINGS: Final = ("", "", "Hi,", "Hello,", "Hi there,", "Good morning,", "Hey,", "Dear support,")
FIRST_NAMES: Final = (
    "Jane", "John", "Priya", "Mateo", "Aiko", "Fatima", "Lukas", "Chloe", "Omar", "Sofia", "Wei",
    "Grace", "Tomás", "Nina", "Kwame", "Elena", "Raj", "Hannah", "Diego", "Yuki",
)  # fmt: skip
LAST_NAMES: Final = (
    "Doe", "Smith", "Patel", "Garcia", "Tanaka", "Khan", "Müller", "Martin", "Haddad", "Rossi",
    "Chen", "Okafor", "Novak", "Silva", "Kim", "Jensen",
)  # fmt: skip
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS: Final = ("August", "September", "October")

TRIAGE_SYSTEM: Final = (
    "You are the ticket triage step of {tenant}'s customer support desk (prompt {version}). "
    "Classify the customer's message and reply with JSON only: category (billing, account, "
    "shipping, technical or other), priority (low, normal, high or urgent), sentiment (negative, "
    "neutral or positive), needs_human (true when the customer asks for a person, threatens a "
    "chargeback or legal action, or the issue is urgent) and summary (one sentence, no personal "
    "data)."
)
ANSWER_SYSTEM: Final = (
    "You are {tenant}'s customer support assistant (prompt {version}). Be friendly, concise and "
    "accurate, and answer in the customer's language. Never ask for full card numbers or "
    "passwords. If you cannot resolve the issue, offer to hand the conversation to a human agent. "
    "Products: {products}."
)
SUMMARIZE_SYSTEM: Final = (
    "You write handoff notes for {tenant}'s human support agents (prompt {version}). Summarise "
    "the conversation in a few sentences: what the customer wants, what has been tried, their "
    "mood and the suggested next step. Do not include personal data."
)


class Person:
    """A customer: ids and what they might reveal."""

    def __init__(self, rng: random.Random, tenant: str) -> None:
        self.first, self.last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        self.user_id = f"usr_{rng.getrandbits(40):010x}"
        ascii_last = self.last.replace("ü", "ue").lower()
        self.email = f"{self.first.lower()}.{ascii_last}@example.com"
        self.phone = f"+1 555 01{rng.randrange(10, 100)}"
        self.tenant = tenant


def _fill(rng: random.Random, text: str, tenant: str, person: Person, order: str) -> str:
    return text.format(
        order=order,
        product=rng.choice(TENANTS[tenant][2]),
        tenant=TENANTS[tenant][0],
        amount=f"{rng.choice((9, 19, 29, 49, 99, 149, 299))}.{rng.choice(('00', '99'))}",
        month=rng.choice(MONTHS),
        weekday=rng.choice(WEEKDAYS),
        days=rng.randrange(5, 15),
        n=rng.choice((300, 600, 1200, 5000)),
        code=rng.randrange(100, 999),
        email=person.email,
        name=rng.choice(FIRST_NAMES),
    )


def _ticket(rng: random.Random, tenant: str, person: Person, order: str) -> str:
    topic = rng.choices(list(TOPIC_WEIGHTS), weights=list(TOPIC_WEIGHTS.values()))[0]
    parts = [_fill(rng, rng.choice(TICKETS[topic]), tenant, person, order)]
    if rng.random() < 0.45:
        parts.append(rng.choice(MOODS))
    pii = rng.random()
    if pii < 0.12:
        parts.append(f"My email is {person.email}.")
    elif pii < 0.18:
        parts.append(f"You can call me on {person.phone}.")
    elif pii < 0.22:
        parts.append(f"The card ends in {rng.randrange(1000, 9999)}.")
    elif pii < 0.23:
        parts.append("My card number is 4111 1111 1111 1111 if you need it.")
    body = " ".join(parts)
    greeting = rng.choice(GREETINGS)
    sign = rng.choice(
        (
            "",
            "",
            f"Thanks, {person.first}",
            f"Best, {person.first} {person.last}",
            f"— {person.first}",
        )
    )
    sep = "\n\n" if rng.random() < 0.4 else " "
    return sep.join(p for p in (greeting, body, sign) if p)


def _follow_up(rng: random.Random, tenant: str, person: Person, order: str) -> str:
    return _fill(rng, rng.choice(FOLLOW_UPS), tenant, person, order)


def _latency(rng: random.Random, response: dict[str, Any]) -> float:
    tokens = int(response["usage"]["completion_tokens"])
    value = (250 + 9 * tokens) * math.exp(rng.gauss(0, 0.35))
    return round(min(2500.0, max(400.0, value)), 1)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _record(
    rng: random.Random, request: dict[str, Any], t: datetime, feature: str, session: dict[str, Any]
) -> dict[str, Any]:
    response = openai_response(request, created=int(t.timestamp()))
    return {
        "request": request,
        "response": response,
        "latency_ms": _latency(rng, response),
        "timestamp": _iso(t),
        "metadata": {
            "feature": feature,
            "tenant": session["tenant"],
            "session_id": session["id"],
            "user_id": session["person"].user_id,
            "prompt_version": PROMPT_VERSION,
            "channel": session["channel"],
        },
    }


def _plan_turns(rng: random.Random) -> list[int]:
    turns = rng.choices((0, 1, 2, 3, 4), weights=(50, 25, 12, 8, 5), k=N_SESSIONS)
    while sum(turns) != N_ANSWER:  # adjust to the exact total
        i = rng.randrange(N_SESSIONS)
        if sum(turns) > N_ANSWER and turns[i] > 0:
            turns[i] -= 1
        elif sum(turns) < N_ANSWER and turns[i] < 4:
            turns[i] += 1
    return turns


def _start_time(rng: random.Random) -> datetime:
    day = rng.randrange(DAYS)
    hour = min(22.5, max(0.0, rng.gauss(14.0, 3.5)))  # business hours, UTC
    return START + timedelta(days=day, hours=hour, seconds=rng.random() * 60)


def _sessions(rng: random.Random) -> list[dict[str, Any]]:
    names = list(TENANTS)
    tenants = rng.choices(names, weights=[TENANTS[n][1] for n in names], k=N_SESSIONS)
    people: dict[str, list[Person]] = {n: [] for n in names}
    turns = _plan_turns(rng)
    with_turns = [i for i in range(N_SESSIONS) if turns[i] > 0]
    without = [i for i in range(N_SESSIONS) if turns[i] == 0]
    handoff = set(rng.sample(with_turns, min(len(with_turns), 190)))
    handoff |= set(rng.sample(without, N_SUMMARIZE - len(handoff)))
    sessions = []
    for i, tenant in enumerate(tenants):
        pool = people[tenant]
        if pool and rng.random() < 0.25:  # returning customers
            person = rng.choice(pool)
        else:
            person = Person(rng, tenant)
            pool.append(person)
        sessions.append(
            {
                "id": f"sess_{rng.getrandbits(48):012x}",
                "tenant": tenant,
                "person": person,
                "channel": rng.choices(("web", "email", "mobile"), weights=(6, 3, 2))[0],
                "turns": turns[i],
                "handoff": i in handoff,
                "order": str(rng.randrange(100_000, 999_999)),
                "start": _start_time(rng),
            }
        )
    return sessions


def _session_records(
    rng: random.Random, s: dict[str, Any], seen: set[bytes]
) -> list[dict[str, Any]]:
    tenant, person = s["tenant"], s["person"]
    display, _, products = TENANTS[tenant]
    fmt = {"tenant": display, "version": PROMPT_VERSION, "products": ", ".join(products)}
    while True:  # every logged request is distinct (the response id is the record id)
        ticket = _ticket(rng, tenant, person, s["order"])
        triage_request: dict[str, Any] = {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": TRIAGE_SYSTEM.format(**fmt)},
                {"role": "user", "content": ticket},
            ],
            "temperature": 0,
            "max_tokens": 300,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "ticket_triage", "strict": True, "schema": TRIAGE_SCHEMA},
            },
        }
        key = orjson.dumps(triage_request, option=orjson.OPT_SORT_KEYS)
        if key not in seen:
            seen.add(key)
            break
    t = s["start"]
    out = [_record(rng, triage_request, t, "triage", s)]
    history: list[dict[str, Any]] = []
    transcript = [f"Customer: {ticket}"]
    user_text = ticket
    t += timedelta(seconds=1 + rng.random() * 4)
    for turn in range(s["turns"]):
        if turn:
            user_text = _follow_up(rng, tenant, person, s["order"])
            transcript.append(f"Customer: {user_text}")
            t += timedelta(seconds=30 + rng.random() * 420)
        history.append({"role": "user", "content": user_text})
        request = {
            "model": MODEL,
            "messages": [{"role": "system", "content": ANSWER_SYSTEM.format(**fmt)}, *history],
            "temperature": 0.3,
            "max_tokens": 600,
            "user": person.user_id,
        }
        record = _record(rng, request, t, "answer", s)
        seen.add(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
        reply = record["response"]["choices"][0]["message"]["content"]
        history.append({"role": "assistant", "content": reply})
        transcript.append(f"Assistant: {reply}")
        out.append(record)
        t += timedelta(milliseconds=record["latency_ms"])
    if s["handoff"]:
        t += timedelta(seconds=20 + rng.random() * 160)
        request = {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": SUMMARIZE_SYSTEM.format(**fmt)},
                {
                    "role": "user",
                    "content": "Summarise this conversation for the agent taking over.\n\n"
                    + "\n".join(transcript),
                },
            ],
            "temperature": 0.2,
            "max_tokens": 400,
        }
        out.append(_record(rng, request, t, "summarize", s))
    return out


def _torn_line(rng: random.Random, neighbour: dict[str, Any]) -> bytes:
    """A record cut off mid-write, as a crashed log shipper leaves it."""
    person = Person(rng, neighbour["metadata"]["tenant"])
    session = {
        "id": f"sess_{rng.getrandbits(48):012x}",
        "tenant": neighbour["metadata"]["tenant"],
        "person": person,
        "channel": "web",
    }
    request = dict(neighbour["request"])
    t = datetime.fromisoformat(neighbour["timestamp"].replace("Z", "+00:00")) + timedelta(
        milliseconds=7
    )
    line = orjson.dumps(_record(rng, request, t, neighbour["metadata"]["feature"], session))
    return line[: len(line) * 3 // 5]


def build() -> tuple[bytes, Counter[str], Counter[str]]:
    """The gzip bytes of the traffic file, and the record counts per feature and per tenant."""
    rng = random.Random(SEED)
    seen: set[bytes] = set()
    records = [r for s in _sessions(rng) for r in _session_records(rng, s, seen)]
    end = START + timedelta(days=DAYS + 1)
    assert all(r["timestamp"] < _iso(end) for r in records), "a session ran past the window"
    records.sort(key=lambda r: (r["timestamp"], r["response"]["id"]))
    ids = [r["response"]["id"] for r in records]
    assert len(set(ids)) == len(ids), "response ids (record ids) must be unique"
    lines = [orjson.dumps(r) for r in records]
    lines.insert(TORN_LINE - 1, _torn_line(rng, records[TORN_LINE - 2]))
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(b"\n".join(lines) + b"\n")
    features = Counter(r["metadata"]["feature"] for r in records)
    tenants = Counter(r["metadata"]["tenant"] for r in records)
    return raw.getvalue(), features, tenants


def main() -> None:
    """Rewrite traffic.jsonl.gz next to this script and print what it holds."""
    data, features, tenants = build()
    OUT.write_bytes(data)
    total = sum(features.values())
    print(
        f"wrote {OUT.name}: {len(data) / 1e6:.2f} MB, {total} records + 1 torn line (line {TORN_LINE})"
    )
    print("features:", dict(sorted(features.items())))
    print("tenants:", dict(tenants.most_common()))


if __name__ == "__main__":
    main()
