"""The real-app corpus (issue #16): fetch, label, measure."""
