"""Feature builders: raw CRM tables -> one row of features per (lead, as_of) snapshot."""
