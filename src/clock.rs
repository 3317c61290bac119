//! The wall clock as the rest of the code reads it: whole seconds since the Unix epoch.

/// Seconds since 1970-01-01 UTC (0 if the clock is set before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
