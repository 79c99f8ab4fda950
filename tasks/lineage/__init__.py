"""Lineage: one run lifecycle for every flow (lifecycle), lineage rows and OpenLineage events
(runs), what thumbs runs / thumbs lineage print (history), the nightly report."""
