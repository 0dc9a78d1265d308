"""`python -m evalpipe.fake --port N --latency-ms X` serves the fake provider (`serving(subprocess=True)`)."""

from __future__ import annotations

import argparse

from evalpipe.fake.server import _serve_inherited, run_server


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m evalpipe.fake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--batch-polls", type=int, default=0)
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fd is not None:
        _serve_inherited(args.fd, args.latency_ms, args.jitter, args.parent_pid, args.batch_polls)
    else:
        run_server(
            args.host,
            args.port,
            latency_ms=args.latency_ms,
            jitter=args.jitter,
            batch_polls=args.batch_polls,
        )


if __name__ == "__main__":
    main()
