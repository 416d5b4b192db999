"""Test helpers shared across test modules (not fixtures: plain functions)."""
