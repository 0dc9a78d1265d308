"""`python -m evalpipe.fake --port N` runs the fake provider (used by `serving(subprocess=True)`)."""

import argparse

from evalpipe.fake.server import run_server

parser = argparse.ArgumentParser(prog="python -m evalpipe.fake")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8911)
parser.add_argument("--latency-ms", type=float, default=20.0)
args = parser.parse_args()
run_server(args.host, args.port, latency_ms=args.latency_ms)
