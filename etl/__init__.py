"""socialrec package."""
