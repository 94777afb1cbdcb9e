"""identity: (built in later issues)."""
