"""Shared pieces of the end-to-end suite: a real `ferrule` process runner and a raw HTTP client."""
