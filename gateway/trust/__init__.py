"""Trust between operators: the national whitelist of domains and the verification of peers' certificates."""
