"""The store: SQLite by default, PostgreSQL for a team; models, migrations, the service layer."""
