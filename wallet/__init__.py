"""wallet: (built in later issues)."""
