"""signing: (built in later issues)."""
