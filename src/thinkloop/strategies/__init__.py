"""Reasoning strategies."""
