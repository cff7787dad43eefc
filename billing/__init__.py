"""Billing: usage metering, invoice previews and (later) payments."""
