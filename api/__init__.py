"""The web layer: FastAPI app, routes, settings wiring and the ``eid`` command line."""
