"""Replay: the async engine, its limits and the response cache."""
