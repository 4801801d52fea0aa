"""Models of batches.execution."""
