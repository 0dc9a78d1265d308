"""What the fake support assistant says: topics keyed by keywords, sentences in two phrasings.

Every sentence slot has a plain phrasing (what the baseline says) and a reworded one of about the
same length (what the `good` behaviour says on some requests), so a reworded answer differs in
wording but stays within ±10% of the baseline's length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "FILLERS",
    "THANKS",
    "TOPICS",
    "Details",
    "Topic",
    "details",
    "find_topic",
    "free_text",
    "handoff_summary",
    "ticket_summary",
]


class Pair(NamedTuple):
    """One sentence in its plain and its reworded phrasing."""

    plain: str
    reworded: str


@dataclass(frozen=True)
class Topic:
    """A kind of support request and the sentences that answer it."""

    name: str
    category: str
    keywords: tuple[str, ...]
    summary: str
    """Short label for a ticket summary ("Refund request")."""
    core: Pair
    step: Pair
    handoff: str
    """What the conversation is about, for an agent ("a refund for a recent order")."""
    agent_step: str
    """What the human agent should do next."""


def _p(plain: str, reworded: str) -> Pair:
    return Pair(plain, reworded)


TOPICS: Final[tuple[Topic, ...]] = (
    Topic(
        "damaged",
        "shipping",
        ("damaged", "broken", "cracked", "smashed", "missing item", "missing part"),
        "Item arrived damaged or incomplete",
        _p(
            "I'm sorry the item arrived in that condition. I've logged it as damaged in transit, "
            "so you won't need to send it back before we replace it.",
            "Apologies that your item reached you like that. It is now recorded as damaged in "
            "transit, which means no return is needed before we replace it.",
        ),
        _p(
            "A replacement ships within one business day, and you'll get a tracking link by email "
            "as soon as the carrier collects it.",
            "The replacement leaves our warehouse within one business day; a tracking link follows "
            "by email once the carrier has it.",
        ),
        "an item that arrived damaged or incomplete",
        "confirm the replacement order and check whether photos of the damage are needed",
    ),
    Topic(
        "refund",
        "billing",
        ("refund", "money back", "reimburse", "charged twice", "double charge", "double-charged"),
        "Refund request",
        _p(
            "I've checked your payment history and started a refund to your original payment "
            "method. Refunds usually arrive within 5–7 business days.",
            "Your payment history is reviewed and a refund to the card or account you paid with "
            "is under way. It normally lands within 5–7 business days.",
        ),
        _p(
            "You'll receive a confirmation email with the refund reference as soon as our payment "
            "provider has processed it.",
            "Once our payment provider has processed it, a confirmation email with the refund "
            "reference will be sent to you.",
        ),
        "a refund for a recent payment",
        "confirm the refund was issued and send the customer the reference number",
    ),
    Topic(
        "invoice",
        "billing",
        ("invoice", "receipt", "vat", "billing address", "tax id"),
        "Invoice or receipt request",
        _p(
            "You can download every invoice from Settings → Billing → Invoices. Each one is "
            "available as a PDF as soon as the payment has been processed.",
            "Every invoice is available under Settings → Billing → Invoices, as a PDF that appears "
            "right after the payment has been processed.",
        ),
        _p(
            "If the company name or VAT number is missing, add it on the same page and we can "
            "reissue the invoice with the corrected details.",
            "Should the company name or VAT number be missing, enter it on that page and we'll "
            "reissue the invoice with the right details.",
        ),
        "an invoice that needs to be sent or corrected",
        "reissue the invoice with the corrected company details",
    ),
    Topic(
        "cancel",
        "billing",
        ("cancel", "unsubscribe", "stop my subscription", "end my plan", "downgrade"),
        "Cancellation request",
        _p(
            "I can cancel that for you. Your subscription stays active until the end of the "
            "current billing period, and you won't be charged again after that.",
            "I'm able to cancel it for you. The subscription remains active until this billing "
            "period ends, and no further charges will be made after that.",
        ),
        _p(
            "Your data is kept for 30 days after the plan ends, so you can reactivate at any time "
            "without losing anything.",
            "We keep your data for 30 days once the plan ends, so reactivating at any point "
            "means you lose nothing.",
        ),
        "cancelling a subscription",
        "confirm the cancellation date and check whether a retention offer applies",
    ),
    Topic(
        "charge",
        "billing",
        ("charged", "charge", "charges", "payment", "billed", "declined"),
        "Question about a charge",
        _p(
            "I can see the charge you mean. It is the renewal of your plan, which was billed on "
            "the date shown in Settings → Billing.",
            "I found the charge you're referring to. It's your plan's renewal, billed on the date "
            "listed under Settings → Billing.",
        ),
        _p(
            "If you did not intend to renew, reply here and I can cancel the plan and refund the "
            "full amount today.",
            "If the renewal wasn't intended, just reply and I'll cancel the plan and refund the "
            "whole amount today.",
        ),
        "an unexpected charge on the customer's card",
        "check the billing history and refund the renewal if the customer confirms",
    ),
    Topic(
        "password",
        "account",
        ("password", "reset link", "reset email"),
        "Password reset problem",
        _p(
            "You can reset your password from the sign-in page with “Forgot password”. The reset "
            "link is valid for 30 minutes and can be used once.",
            "Use “Forgot password” on the sign-in page to reset it. Each reset link works once "
            "and stays valid for 30 minutes.",
        ),
        _p(
            "If the email doesn't arrive within a few minutes, check your spam folder or ask me "
            "to send it to a different address.",
            "Should the email not show up within a few minutes, look in your spam folder or ask "
            "me to use another address.",
        ),
        "resetting a password",
        "verify the customer's identity and send a new reset link",
    ),
    Topic(
        "login",
        "account",
        ("log in", "login", "sign in", "signin", "locked out", "two-factor", "2fa"),
        "Cannot sign in",
        _p(
            "Sign-in problems are usually caused by an expired session. Please clear your browser "
            "cookies for our site and sign in again.",
            "An expired session is the usual cause of sign-in trouble. Clear our site's cookies "
            "in your browser, then try signing in again.",
        ),
        _p(
            "If you use two-factor authentication, make sure your phone's clock is set "
            "automatically, because codes expire after 30 seconds.",
            "For two-factor authentication, check that your phone sets its clock automatically, "
            "since each code expires after 30 seconds.",
        ),
        "being unable to sign in",
        "check the account for lockouts and reset two-factor authentication if needed",
    ),
    Topic(
        "account",
        "account",
        (
            "email address",
            "account",
            "profile",
            "username",
            "team member",
            "team members",
            "seat",
            "seats",
        ),
        "Account settings change",
        _p(
            "You can change the email address, plan and team members under Settings → Account, "
            "and the changes take effect immediately.",
            "The email address, plan and team members can all be edited in Settings → Account; "
            "changes apply straight away.",
        ),
        _p(
            "For security, we send a confirmation link to the old address before an email change "
            "is completed.",
            "As a security measure, a confirmation link goes to the old address before an email "
            "change is finalised.",
        ),
        "a change to account settings",
        "confirm the requested account change with the account owner",
    ),
    Topic(
        "return",
        "shipping",
        (
            "return it",
            "return this",
            "return the",
            "a return",
            "returning",
            "exchange",
            "wrong size",
            "send it back",
        ),
        "Return or exchange request",
        _p(
            "You can return any item within 30 days. I've created a prepaid return label, which "
            "you'll find in your order history.",
            "Returns are accepted within 30 days of delivery, and a prepaid return label is now "
            "waiting for you in your order history.",
        ),
        _p(
            "Once the parcel reaches our warehouse, we'll send the exchange or refund within "
            "three business days.",
            "When the parcel arrives at our warehouse, the exchange or refund follows within "
            "three business days.",
        ),
        "returning or exchanging an item",
        "confirm the return label was received and track the parcel",
    ),
    Topic(
        "delivery",
        "shipping",
        ("late", "delayed", "hasn't arrived", "has not arrived", "not arrived", "still waiting"),
        "Late delivery",
        _p(
            "I'm sorry the delivery is late. I've opened a trace with the carrier, which usually "
            "gives us an update within 24 hours.",
            "Apologies for the delay with your delivery. A trace is now open with the carrier, "
            "and they normally reply within 24 hours.",
        ),
        _p(
            "If the parcel hasn't moved in 48 hours, we'll send a replacement at no cost, and you "
            "won't need to do anything.",
            "Should the parcel still be stuck after 48 hours, a free replacement will be sent "
            "without any action on your part.",
        ),
        "a delivery that is late",
        "follow up on the carrier trace and ship a replacement if it is lost",
    ),
    Topic(
        "shipping",
        "shipping",
        (
            "where is my order",
            "tracking",
            "shipped",
            "shipping",
            "order status",
            "parcel",
            "package",
            "order",
            "orders",
        ),
        "Order status question",
        _p(
            "I found your order. It has left our warehouse and is with the carrier, and tracking "
            "updates can lag by up to 24 hours.",
            "Your order is located: it has left our warehouse and the carrier has it, though "
            "tracking may lag by up to 24 hours.",
        ),
        _p(
            "The estimated delivery is within three business days, and the tracking link is in "
            "your confirmation email.",
            "Delivery is expected within three business days, and your confirmation email has "
            "the tracking link.",
        ),
        "the status of an order",
        "check the tracking status with the carrier",
    ),
    Topic(
        "api",
        "technical",
        ("api", "webhook", "webhooks", "integration", "rate limit", "429", "sdk", "token expired"),
        "API or integration issue",
        _p(
            "API requests return 429 when you exceed your plan's rate limit. Spread the requests "
            "over time or retry with exponential backoff.",
            "A 429 from the API means the plan's rate limit was exceeded. Space the requests out "
            "or retry them with exponential backoff.",
        ),
        _p(
            "Webhook deliveries are retried for 24 hours, and you can see every attempt under "
            "Developers → Webhooks → Logs.",
            "We retry webhook deliveries for 24 hours; each attempt is listed under Developers → "
            "Webhooks → Logs.",
        ),
        "an API or integration problem",
        "review the API logs for the customer's key and raise the limit if appropriate",
    ),
    Topic(
        "crash",
        "technical",
        ("crash", "crashes", "crashed", "crashing", "freezes", "frozen", "keeps closing"),
        "App crashes",
        _p(
            "I'm sorry the app keeps crashing. Please update to the latest version, which fixes "
            "several stability issues.",
            "Apologies that the app keeps crashing. The newest version fixes several stability "
            "problems, so please update.",
        ),
        _p(
            "If it still crashes, send a log from Settings → Help → Send diagnostics so our "
            "engineers can find the cause quickly.",
            "Should it keep crashing, a log sent from Settings → Help → Send diagnostics lets our "
            "engineers find the cause fast.",
        ),
        "the app crashing",
        "collect the diagnostics log and open an engineering ticket",
    ),
    Topic(
        "bug",
        "technical",
        (
            "error",
            "errors",
            "bug",
            "not working",
            "doesn't work",
            "does not work",
            "fails",
            "failed",
            "broken link",
            "sync",
            "syncing",
            "export",
            "import",
        ),
        "Technical problem report",
        _p(
            "I'm sorry for the trouble. This error usually appears when the app's cache is out of "
            "date, so please update and restart the app.",
            "Sorry about the trouble. An outdated app cache is the usual cause of this error, so "
            "please update the app and then restart it.",
        ),
        _p(
            "If it persists, send us the error code shown on screen and I'll pass it to our "
            "engineers with your steps.",
            "If it doesn't go away, share the error code on screen and I'll forward it to our "
            "engineers along with your steps.",
        ),
        "a technical problem in the product",
        "reproduce the error with the customer's steps and escalate to engineering",
    ),
    Topic(
        "thanks",
        "other",
        ("thanks", "thank you", "that worked", "perfect", "great", "all sorted"),
        "Customer confirms the issue is resolved",
        _p(
            "You're welcome, and I'm glad that's sorted. I'll close this conversation now, but you "
            "can reopen it by replying here.",
            "Happy to help, and great that it's resolved. This conversation will now be closed, "
            "though a reply here reopens it.",
        ),
        _p(
            "Your case history stays in your account, so anyone on our team can pick it up "
            "quickly if you need us again.",
            "The case history remains in your account, so any of our team can pick it up quickly "
            "if you need us later.",
        ),
        "a question that has been resolved",
        "close the ticket",
    ),
)

THANKS: Final = next(t for t in TOPICS if t.name == "thanks")
"""The customer saying the issue is solved."""

_FALLBACK: Final = Topic(
    "other",
    "other",
    (),
    "General enquiry",
    _p(
        "I've noted your request and added it to your account so the right team can take a "
        "look at it.",
        "Your request is noted and attached to your account, so the right team can review it "
        "properly.",
    ),
    _p(
        "A member of our team will follow up by email within one business day with an answer or "
        "the next steps.",
        "Someone from our team will reply by email within one business day with an answer or the "
        "next steps.",
    ),
    "a general question",
    "read the conversation and reply to the customer",
)

_TIPS: Final[dict[str, Pair]] = {
    "damaged": _p(
        "If you like, reply with a photo of the damage; it helps us improve how we pack orders.",
        "You're welcome to reply with a photo of the damage, which helps us improve our packing.",
    ),
    "refund": _p(
        "Your bank may take a little longer to show it, but the refund will appear as a credit from us.",
        "It can take your bank a little longer to display it, but it will show as a credit from us.",
    ),
    "invoice": _p(
        "Invoices for earlier months are there too, and you can export them all at once as a ZIP file.",
        "Older invoices are listed there as well, and you can export all of them at once as a ZIP.",
    ),
    "cancel": _p(
        "If you only want a pause, you can also freeze the plan for up to three months instead.",
        "If a break is all you need, the plan can also be frozen for up to three months instead.",
    ),
    "charge": _p(
        "Renewal reminders go out seven days before each charge, so check that folder for the notice.",
        "We send renewal reminders seven days before every charge, so that folder may have the notice.",
    ),
    "password": _p(
        "Choose a password with at least 12 characters that you don't use for any other service.",
        "Pick a password of at least 12 characters that you haven't used for any other service.",
    ),
    "login": _p(
        "If none of this works, I can send you a one-time sign-in link to get you back in quickly.",
        "Should none of that help, I can send a one-time sign-in link to get you back in quickly.",
    ),
    "account": _p(
        "Only account owners and admins can make these changes, so ask them if the option is greyed out.",
        "These changes need an account owner or admin, so check with them if the option is greyed out.",
    ),
    "return": _p(
        "Please keep the original packaging if you can, as it protects the item on its way back.",
        "If possible, reuse the original packaging, since it protects the item on the way back.",
    ),
    "delivery": _p(
        "You don't need to stay at home: the carrier will leave a card if nobody can sign for it.",
        "There's no need to wait at home, as the carrier leaves a card if nobody can sign for it.",
    ),
    "shipping": _p(
        "You can also change the delivery address until the parcel reaches the local depot.",
        "The delivery address can still be changed until the parcel reaches the local depot.",
    ),
    "api": _p(
        "Our status page at status.example.com shows any ongoing incidents affecting the API.",
        "Any ongoing incidents affecting the API are listed on our status page, status.example.com.",
    ),
    "crash": _p(
        "Restarting your device after the update also clears any temporary files that may be corrupt.",
        "A restart of your device after updating also clears temporary files that may be corrupt.",
    ),
    "bug": _p(
        "Our status page at status.example.com also lists any known issues and when they'll be fixed.",
        "Known issues and their expected fix dates are also listed on our status page, status.example.com.",
    ),
    "thanks": _p(
        "If you have a moment, the short survey in your inbox helps us keep improving our support.",
        "When you have a moment, the short survey in your inbox helps us keep improving our help.",
    ),
    "other": _p(
        "Many common questions are also answered in our help centre, which is searchable by topic.",
        "Our help centre also answers many common questions and can be searched by topic.",
    ),
}
_CASE: Final = _p(
    "I've added a note to your case ({ref}) so anyone on our team can see the history.",
    "Your case ({ref}) now has a note, so anyone on our team can see the full history.",
)
_OPENERS: Final = (
    _p("Thanks for getting in touch.", "Thank you for contacting us."),
    _p("Thanks for your message.", "Thank you for writing in."),
    _p("Happy to help with this.", "Glad to help you with this."),
    _p("Thanks for the details.", "Thank you for the details."),
)
_FOLLOW_UP_OPENERS: Final = (
    _p("Thanks for following up.", "Thank you for the update."),
    _p("Thanks for letting me know.", "Thank you for telling me."),
)
_CLOSERS: Final = (
    _p("Is there anything else I can help with?", "Can I help with anything else today?"),
    _p(
        "Let me know if you have any other questions.", "Just reply if any other questions come up."
    ),
    _p("I'm here if you need anything else.", "I'm around if anything else comes up."),
    _p("Have a great day!", "Wishing you a good day!"),
)

FILLERS: Final[tuple[str, ...]] = (
    "I completely understand how frustrating this can be, and I want to make sure that we get "
    "this fully resolved for you as quickly as possible.",
    "Please don't hesitate to reach out again at any time, as our support team is available "
    "around the clock to assist you with any further questions.",
    "As a helpful reminder, you can also find many useful articles in our knowledge base, which "
    "covers a wide range of common topics in detail.",
    "We truly value your business and sincerely appreciate your patience and understanding while "
    "we look into this matter on your behalf.",
    "For your security, please never share your password or your full card number with anyone, "
    "including members of our own support staff.",
    "Rest assured that your satisfaction is our top priority, and we are fully committed to "
    "providing you with the best possible experience.",
    "In the meantime, it may also help to double-check that your app and browser are up to date, "
    "as this can often prevent similar issues.",
    "We are continually working to improve our products and services, and feedback like yours "
    "helps us make them better for every customer.",
)

_ORDER: Final = re.compile(r"#\s?(\d{4,})|\border(?: number| no\.?)?\s+(\d{4,})\b", re.I)
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE: Final = re.compile(r"\+?\d[\d ()-]{7,}\d")
_CARD: Final = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_URGENT: Final = ("urgent", "asap", "immediately", "right now", "today!", "lawyer", "chargeback")
_HIGH: Final = ("again", "still", "third time", "second time", "several days", "a week")
_LOW: Final = ("whenever", "no rush", "just wondering", "curious", "quick question")
_NEGATIVE: Final = (
    "angry",
    "terrible",
    "worst",
    "unacceptable",
    "ridiculous",
    "frustrat",
    "disappoint",
    "still",
    "again",
    "annoy",
    "useless",
    "not happy",
    "fed up",
)
_POSITIVE: Final = ("thanks", "thank you", "love", "great", "appreciate", "awesome", "perfect")
_HUMAN: Final = ("lawyer", "chargeback", "manager", "human", "real person", "supervisor", "legal")


class Details(NamedTuple):
    """What the fake reads from a ticket: topic, order number, and urgency and tone signals."""

    topic: Topic
    order: str | None
    has_email: bool
    priority: str
    sentiment: str
    needs_human: bool


_KEYWORD_TOPIC: Final = {k: i for i, t in reversed(list(enumerate(TOPICS))) for k in t.keywords}
_KEYWORDS: Final = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(k) for k in sorted(_KEYWORD_TOPIC, key=len, reverse=True))
    + r")(?!\w)"
)


def find_topic(text: str) -> Topic | None:
    """The first topic (in `TOPICS` order) one of whose keywords is a word of the text, or None."""
    found = {_KEYWORD_TOPIC[m.group()] for m in _KEYWORDS.finditer(text.lower())}
    return TOPICS[min(found)] if found else None


def details(text: str, *, earlier: Sequence[str] = ()) -> Details:
    """Read a customer message; `earlier` ones (newest first) give topic and order if it has none."""
    low = text.lower()
    topic = next(filter(None, map(find_topic, (text, *earlier))), None) or _FALLBACK
    m = next(filter(None, (_ORDER.search(t) for t in (text, *earlier))), None)
    order = (m.group(1) or m.group(2)) if m else None
    if any(w in low for w in _URGENT):
        priority = "urgent"
    elif any(w in low for w in _HIGH):
        priority = "high"
    elif any(w in low for w in _LOW):
        priority = "low"
    else:
        priority = "normal"
    if any(w in low for w in _NEGATIVE):
        sentiment = "negative"
    elif any(w in low for w in _POSITIVE):
        sentiment = "positive"
    else:
        sentiment = "neutral"
    needs_human = priority == "urgent" or any(w in low for w in _HUMAN)
    return Details(topic, order, bool(_EMAIL.search(text)), priority, sentiment, needs_human)


def ticket_summary(d: Details, *, verbose: bool) -> str:
    """A one-line summary of a ticket (the `summary` field of a triage answer).

    The verbose form adds a sentence, which leaves a whole triage object only ~15% longer.
    """
    ref = f" (order #{d.order})" if d.order else ""
    tone = {"negative": "; customer is frustrated", "positive": "", "neutral": ""}[d.sentiment]
    text = f"{d.topic.summary}{ref}{tone}."
    if verbose:
        text += " Please follow up soon."
    return text


def free_text(d: Details, seed: int, *, reworded: bool, follow_up: bool, fillers: int = 0) -> str:
    """A support answer: opener, acknowledgement, core, next step, closer.

    Args:
        d: what was read from the conversation.
        seed: picks the opener and closer.
        reworded: use the reworded phrasing of every sentence.
        follow_up: the customer is replying within a conversation.
        fillers: number of filler sentences to add (the verbose behaviour).
    """

    def pick(pair: Pair) -> str:
        return pair.reworded if reworded else pair.plain

    openers = _FOLLOW_UP_OPENERS if follow_up else _OPENERS
    opener = pick(openers[seed % len(openers)])
    closer = pick(_CLOSERS[(seed >> 8) % len(_CLOSERS)])
    parts = [opener]
    if d.order and d.topic.category in ("shipping", "billing"):
        parts.append(
            pick(
                _p(
                    f"I've pulled up order #{d.order} on your account.",
                    f"I've located order #{d.order} in your account.",
                )
            )
        )
    parts += [pick(d.topic.core), pick(d.topic.step), pick(_TIPS[d.topic.name])]
    if not follow_up and (seed >> 24) % 2:
        parts.append(pick(_CASE).format(ref=f"CS-{seed % 900_000 + 100_000}"))
    parts += [FILLERS[((seed >> 16) + i) % len(FILLERS)] for i in range(fillers)]
    parts.append(closer)
    return " ".join(parts)


def _redact(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub("[card number]", text)
    return _PHONE.sub("[phone]", text)


def _progress(replies: int, resolved: bool) -> Pair:
    if resolved:
        return _p(
            "The customer says the latest reply solved the problem.",
            "According to the customer, the last reply fixed the issue.",
        )
    if not replies:
        return _p(
            "No reply has been sent to the customer yet.", "The customer has had no reply so far."
        )
    times = "once" if replies == 1 else f"{replies} times"
    return _p(
        f"The assistant has replied {times} without resolving it.",
        f"The assistant answered {times}, but the issue remains open.",
    )


def handoff_summary(
    d: Details,
    last_customer: str,
    turns: int,
    replies: int,
    seed: int,
    *,
    resolved: bool,
    reworded: bool,
    fillers: int = 0,
) -> str:
    """A handoff note for the human agent taking over a conversation (no personal data).

    Args:
        d: what was read from the conversation.
        last_customer: the customer's latest message (quoted, redacted).
        turns: customer messages so far.
        replies: assistant replies so far.
        seed: picks the filler sentences.
        resolved: the customer's latest message says the issue is solved.
        reworded: use the reworded phrasing of every sentence.
        fillers: number of filler sentences to add (the verbose behaviour).
    """
    words = _redact(last_customer).split()
    quote = " ".join(words[:18]) + ("…" if len(words) > 18 else "")
    ref = f" about order #{d.order}" if d.order else ""
    mood = {
        "negative": _p(
            "The customer is frustrated and has had to follow up.",
            "The customer is unhappy and has had to chase this.",
        ),
        "positive": _p(
            "The customer is friendly and patient.", "The customer is patient and polite."
        ),
        "neutral": _p("The tone of the conversation is calm.", "The conversation has stayed calm."),
    }[d.sentiment]
    exchanged = "message" if turns == 1 else "messages"
    step = "confirm with the customer and close the ticket" if resolved else d.topic.agent_step

    def pick(pair: Pair) -> str:
        return pair.reworded if reworded else pair.plain

    parts = [
        pick(
            _p(
                f"Handoff summary: the customer contacted support{ref} regarding "
                f"{d.topic.handoff} ({turns} {exchanged} so far).",
                f"Summary for handoff: the customer reached out{ref} about "
                f"{d.topic.handoff} ({turns} {exchanged} to date).",
            )
        ),
        pick(mood),
        pick(_progress(replies, resolved)),
        pick(_p(f"Latest message: “{quote}”", f"Most recent message: “{quote}”")),
        pick(
            _p(
                f"Suggested next step: {step}.",
                f"Recommended next step: {step}.",
            )
        ),
    ]
    if d.needs_human:
        parts.append(pick(_p("The customer asked for a person.", "The customer wants a person.")))
    if d.has_email:
        parts.append(pick(_p("An email address was shared.", "They shared an email address.")))
    parts[3:3] = [FILLERS[((seed >> 16) + i) % len(FILLERS)] for i in range(fillers)]
    return " ".join(parts)
