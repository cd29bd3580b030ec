"""Tables, engines, migrations, bulk writers and queries for the two databases."""
