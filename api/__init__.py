"""The outer layer: the FastAPI app and the ``socialrec`` command line. Nothing imports back into it."""
