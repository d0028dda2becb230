"""Streamlit glue shared by the pages: cached resources, the auth gate and shared widgets. Only UI code imports it."""
