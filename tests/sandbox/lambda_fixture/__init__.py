"""A tiny function package for tests/sandbox/test_lambda_runtime.py (not product code)."""
