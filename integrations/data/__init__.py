"""Data providers: market data, enrichment, and the like."""
