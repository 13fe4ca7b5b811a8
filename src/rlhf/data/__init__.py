"""Records, validation, ranking expansion, prompt rendering, tokenization and collation."""
