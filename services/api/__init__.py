"""The REST API (Litestar): turns requests into commands and reads the projections."""
