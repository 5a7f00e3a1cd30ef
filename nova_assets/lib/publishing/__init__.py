"""Tables published for readers: the read-only local copy and the object store."""
