"""Usage metering: per-organization, per-day, per-tier usage aggregated from the durable query log."""
