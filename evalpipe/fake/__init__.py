"""A fake OpenAI + Anthropic provider for demos and tests (no keys, loopback only).

Behaviours are chosen by model name (`behaviours.py`); a judge persona answers judge prompts.
"""

from evalpipe.fake.behaviours import BEHAVIOURS, resolve_model
from evalpipe.fake.server import create_app, run_server, serving

__all__ = ["BEHAVIOURS", "create_app", "resolve_model", "run_server", "serving"]
