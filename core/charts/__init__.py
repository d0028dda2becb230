"""Plotly figures built from core read models (no Streamlit here)."""
