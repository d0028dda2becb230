"""Storage: the tables and their typed vocabularies, the engine, encrypted secrets, users, the audit writer and the
bulk upsert; nothing above it is imported here."""
