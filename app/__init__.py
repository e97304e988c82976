"""The Streamlit upload page and its TensorFlow-free helpers (API client, results table)."""
