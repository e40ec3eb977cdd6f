"""Whose turn it is: the queue rules for Migrations and DatabaseBackups of one database, and the
wake-ups that tell a waiting daemon to look again."""
