"""The adapter registry: format name → adapter class, and name parsing (``openai_batch@1``)."""

from __future__ import annotations

from typing import Final

from evalpipe.errors import InputError
from evalpipe.ingest.anthropic_batch import AnthropicBatch
from evalpipe.ingest.anthropic_messages import AnthropicMessages
from evalpipe.ingest.bfcl import Bfcl
from evalpipe.ingest.canonical import Canonical
from evalpipe.ingest.langfuse import Langfuse
from evalpipe.ingest.openai_batch import OpenAIBatch
from evalpipe.ingest.openai_chat import OpenAIChat
from evalpipe.ingest.openai_responses import OpenAIResponses
from evalpipe.ingest.otel_genai import OtelGenAI
from evalpipe.ingest.records import Adapter

__all__ = ["ADAPTERS", "FORMAT_NAMES", "adapter_class"]

ADAPTERS: Final[dict[str, type[Adapter]]] = {
    cls.name: cls
    for cls in (
        # most specific first: auto-detection asks them in this order
        Canonical,
        OpenAIBatch,
        AnthropicBatch,
        OtelGenAI,
        Langfuse,
        Bfcl,
        OpenAIResponses,
        AnthropicMessages,
        OpenAIChat,
    )
}
"""Every adapter by unversioned name, in auto-detection order."""

FORMAT_NAMES: Final = tuple(f"{name}@{cls.version}" for name, cls in ADAPTERS.items())


def adapter_class(fmt: str, where: str = "--format") -> type[Adapter]:
    """The adapter of `fmt` (``openai_chat`` or ``openai_chat@1``).

    Raises:
        InputError: unknown format name or version.
    """
    name, _, version = fmt.strip().partition("@")
    cls = ADAPTERS.get(name)
    if cls is None:
        raise InputError(
            where, f"unknown format {fmt!r}", "Known formats: auto, " + ", ".join(ADAPTERS) + "."
        )
    if version and version != str(cls.version):
        raise InputError(
            where,
            f"format {name} has no version {version!r}",
            f"This evalpipe reads {name}@{cls.version}.",
        )
    return cls
