"""The `ghost` command line."""
