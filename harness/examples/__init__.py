"""The local cluster at work, end to end: `make demo` runs `python -m harness.examples.demo`."""
