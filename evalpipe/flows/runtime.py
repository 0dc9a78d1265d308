"""Running flows from the CLI: Prefect's temporary API server, started early."""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["start_api_early"]

log = logging.getLogger(__name__)


def start_api_early() -> threading.Thread | None:
    """Boot Prefect's temporary API server in the background (~10 s) while the CLI gets ready.

    Only without PREFECT_API_URL. Join the thread before running a flow, so that the server's
    start is never entered twice; should it fail, the flow starts the server itself.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None

    def boot() -> None:
        try:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # the flow will try again and report a real failure
            log.debug("early Prefect start failed", exc_info=True)

    thread = threading.Thread(target=boot, name="prefect-boot", daemon=True)
    thread.start()
    return thread
