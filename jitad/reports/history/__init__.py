"""Who was admin on a target (or where a person was admin) at a moment or over a range."""
