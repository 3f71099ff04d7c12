"""The reliability suite (issue 8): faults, kills, bad inputs, concurrency, secrets."""
