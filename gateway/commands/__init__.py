"""Command groups of the ``gateway`` command that live beside their area (each module has ``register``)."""
