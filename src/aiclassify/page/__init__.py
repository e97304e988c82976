"""The Streamlit upload page's TensorFlow-free helpers: API client, batch results, about texts, API wait."""
