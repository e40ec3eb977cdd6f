"""The PostgreSQL layer every room of the engine shares: sessions, redaction, literals, clock."""
