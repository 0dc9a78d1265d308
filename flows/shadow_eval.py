"""Deployment entrypoint of the shadow evaluation flow (see prefect.yaml)."""

from evalpipe.flows import shadow_eval

if __name__ == "__main__":
    shadow_eval.serve(name="shadow-eval")
