"""Benchmarks of the IoT monitoring dataflow against its peers (`make bench`)."""
