//! Time limits: calendar days and working days, counted in China time (UTC+8).
