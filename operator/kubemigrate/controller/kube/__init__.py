"""The controller's only door to the Kubernetes API: the client wrapper and the login.

Nothing else in the controller imports ``kubernetes`` (an import-linter contract holds it to
that), so the untyped client stays behind one small typed surface that tests can fake.
"""
