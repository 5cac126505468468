"""image-pipeline: image processing and AWS adapters behind the Chalice handlers in app.py."""
