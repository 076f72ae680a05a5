"""The HTTP API and the dashboard it serves (`finsent serve`): `app.create_app` builds it.

This package file imports nothing, so that pipeline/config.py can check FINSENT_API_TOKENS with
`auth.parse_api_tokens` without loading FastAPI.
"""
