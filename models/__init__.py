"""Models on lake features: volatility-spike detection and trend direction (see models/README.md)."""
