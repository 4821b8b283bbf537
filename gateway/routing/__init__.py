"""Where each recipient goes and whether the rules allow it (R1–R5, R8): pure decisions over the store's data."""
