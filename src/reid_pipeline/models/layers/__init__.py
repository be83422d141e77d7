"""Shared building blocks: one small layer per file."""
