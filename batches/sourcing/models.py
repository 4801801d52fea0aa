"""Models of batches.sourcing."""
