"""The shared core: settings for every component, the lake's schemas and table registry, the
trade record and its wire rules, the live-bar message, and the Kafka tails the API and the
dashboard share. Light: no DuckDB, pandas or pyspark (tests/test_imports.py)."""
