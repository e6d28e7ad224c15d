"""Bytewax building blocks of the pipeline, each testable on its own."""
