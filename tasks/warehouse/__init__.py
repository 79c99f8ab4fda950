"""The DuckDB warehouse: connections, migrations, macros and transactions (connection), the
analysts' published copy (publish), and read-only analyst SQL (query)."""
