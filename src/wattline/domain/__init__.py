"""Pure domain types and unit conversions. No I/O lives here."""
