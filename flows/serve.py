"""Serve the `s3t` flow as the deployment `s3t/full` until interrupted: `python flows/serve.py`.

Needs a Prefect API (PREFECT_API_URL, e.g. a local `prefect server start`). Start a run with
`prefect deployment run s3t/full` (`-p key=JSON` per parameter). One run at a time: every run
rewrites this checkout's params.yaml and outputs, so two at once would clobber each other.
"""

from pipeline import DEPLOYMENT_NAME, s3t

if __name__ == "__main__":
    s3t.serve(name=DEPLOYMENT_NAME, limit=1, tags=["dvc"],
              description="The whole DVC pipeline of this checkout; parameters become Hydra overrides of params.yaml.")
