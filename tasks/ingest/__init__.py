"""Ingest: read files of any supported format (readers), load one file in one transaction
with every row accounted for (load), parse big files in worker processes (workers)."""
