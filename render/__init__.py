"""Rendering of training data: scans and open synthetic humans into the 2K2K layout."""
