"""Preference data: sources, format adapters, the canonical triplet, quality report, splits."""
