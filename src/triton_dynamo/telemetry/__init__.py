"""Metrics and traces of the worker: what operators look at."""
