"""Pure image processing: no AWS, no Chalice. `render.render` is the entry point."""
