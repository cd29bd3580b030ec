"""Jobs: plain functions of ids (plant, period) run by the scheduler or the API."""
