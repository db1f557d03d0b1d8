"""Executes pipeline runs on this machine (run.run_pipeline: plain Python, callable without Redis
or a request), with the sandbox, the environments and the builds it needs."""
