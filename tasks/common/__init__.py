"""Shared by every stage: settings and errors, the THUMBS_HOME layout (Home), atomic files,
locks, retries for tasks that touch files, progress bars, artifact markdown."""
