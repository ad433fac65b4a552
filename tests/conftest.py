"""
Shared pytest configuration: pytest-twisted runs the reactor for the
integration tests; unit tests use string transports and fake clocks.
"""
