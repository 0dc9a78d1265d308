"""A fake OpenAI + Anthropic provider for the demo and the tests (no keys, loopback only).

Behaviours are chosen by model name (`behaviours.MODELS`, or `fake-<behaviour>`); answers depend
only on the content of a request, so both APIs give the same answer to the same conversation. A
judge persona answers fenced judge prompts (`judge.py`).
"""

from evalpipe.fake.behaviours import (
    BEHAVIOURS,
    MODELS,
    Answer,
    Behaviour,
    Conversation,
    ToolCall,
    answer,
    resolve_model,
)
from evalpipe.fake.judge import fence, parse_fences
from evalpipe.fake.server import BAD_KEY, builtin_fake, create_app, run_server, serving
from evalpipe.fake.wire import BadRequest, UnknownModel, anthropic_response, openai_response

__all__ = [
    "BAD_KEY",
    "BEHAVIOURS",
    "MODELS",
    "Answer",
    "BadRequest",
    "Behaviour",
    "Conversation",
    "ToolCall",
    "UnknownModel",
    "answer",
    "anthropic_response",
    "builtin_fake",
    "create_app",
    "fence",
    "openai_response",
    "parse_fences",
    "resolve_model",
    "run_server",
    "serving",
]
