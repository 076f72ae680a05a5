"""One module per resource; app.py mounts them under /api/v1 (health and the dashboard at the root)."""
