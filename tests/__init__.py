"""The Python test suites. Shared code lives in tests.support; each folder is one suite."""
