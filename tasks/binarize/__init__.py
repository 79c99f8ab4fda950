"""Binarize: rebuild the marts preference_pairs and feedback from staging, running the SQL
models of warehouse/models in dependency order in one transaction (marts)."""
