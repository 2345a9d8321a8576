"""Utilities of the 2K2K re-implementation."""
