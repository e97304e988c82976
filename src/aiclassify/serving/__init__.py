"""The Flask inference API: :func:`aiclassify.serving.app.create_app` builds it (see docs/api.md)."""
