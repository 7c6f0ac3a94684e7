"""Payment providers: one module per provider behind one contract."""
