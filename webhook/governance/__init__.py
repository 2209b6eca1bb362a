"""Change governance: calendars and freezes, error budgets, change facts, break-glass."""
