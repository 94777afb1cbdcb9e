"""verification: (built in later issues)."""
