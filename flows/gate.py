"""Deployment entrypoint of the CI gate flow (see prefect.yaml)."""

from evalpipe.flows import ci_gate

if __name__ == "__main__":
    ci_gate.serve(name="gate")
