"""Deployment entrypoint of the canary ramp flow (see prefect.yaml)."""

from evalpipe.flows import canary_ramp

if __name__ == "__main__":
    canary_ramp.serve(name="canary")
