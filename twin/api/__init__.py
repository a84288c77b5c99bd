"""The operations REST API (FastAPI): ``twin.api.app.create_app`` builds it over a worker's state.

Nothing is imported here, so the worker can use ``twin.api.journal`` without loading FastAPI.
"""

__all__: list[str] = []
