"""Developer tooling: local service lifecycle for `make run`, `make test` and `make bench`.

Nothing here is imported by the application at run time.
"""
