"""Artifact trust: registry client, signature verification, pull secrets, digest mutation."""
