"""Prefect flows: they only wire the `*_run` functions of `evalpipe.pipeline` together."""

from evalpipe.flows.shadow_eval import shadow_eval

__all__ = ["shadow_eval"]
