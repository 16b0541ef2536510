"""The HTTP layer under the generated routers and clients (docs/api/HTTP.md).

`params` parses path and query parameters, `server` holds the endpoint helpers and the app
factories (FastAPI/Starlette), `client` the engine of the typed clients (httpx only). Nothing is
imported here, so a client does not load the server stack.
"""
