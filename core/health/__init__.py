"""Finds what needs a person: the fleet's issues, their life and their alerts."""
