"""Deployment entrypoint of the nightly drift watch (see prefect.yaml)."""

from evalpipe.flows import nightly_watch

if __name__ == "__main__":
    nightly_watch.serve(name="nightly")
