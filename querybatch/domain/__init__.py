"""Pure domain logic: specs, statuses, dates, filters, split policies. No I/O, no frameworks."""
