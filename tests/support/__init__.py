"""Code the tests share: helpers, builders, references and fakes. Fixtures stay in `tests/conftest.py`."""
