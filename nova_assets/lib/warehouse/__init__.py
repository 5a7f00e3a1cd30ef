"""The warehouse tables: products, the fixed split, OFF's NOVA rules, deltas applied."""
