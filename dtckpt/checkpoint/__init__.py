"""Checkpoint-level API on top of the bundle format: readers, raw ops, the state file."""
