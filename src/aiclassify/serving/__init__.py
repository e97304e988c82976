"""The Flask inference API (issue 5): ``aiclassify.serving.app.create_app`` builds it."""
