"""What every protocol shares: framing, TLS, SASL, access control, config, ids, errors."""
