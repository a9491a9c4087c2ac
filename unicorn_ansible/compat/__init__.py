"""Compatibility with objects of other tools: netunicorn-base and netunicorn-library."""
