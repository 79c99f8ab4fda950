"""The work of the thumbs DAG, one package per stage: sources, ingest, warehouse, binarize,
train, evaluate, lineage, and common for what they share. Each package holds plain functions
and, in its tasks.py, the Prefect @tasks that wrap them (docs/architecture.md)."""
