//! Byte sizes, growth rates and spans as people write them, and back.
//!
//! Sizes take decimal (`KB`, `MB`, `GB`, `TB`: powers of 1000) and binary
//! (`KiB`, `MiB`, `GiB`, `TiB`, and the bare `K`, `M`, `G`, `T`: powers of
//! 1024) units, or none for plain bytes. Rates are sizes per `s`, `min` or
//! `h`, per minute when no time unit is given. Spans are durations as
//! [`cli::parse_duration`] reads them, plus `d` for days.

use std::time::Duration;

use crate::cli;

/// Parses `80MB`, `1.5GiB`, `4096` into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write a number with a unit, like `80MB`"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses `5MB/min`, `300KiB/s`, `1GB/h`, or a size alone (per minute),
/// into bytes per minute.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (size, per) = text.trim().split_once('/').unwrap_or((text, "min"));
    let minutes = match per.trim() {
        "s" | "sec" => 1.0 / 60.0,
        "m" | "min" => 1.0,
        "h" | "hour" => 60.0,
        other => {
            return Err(format!(
                "unknown time unit `{other}` in `{text}`: use s, min or h"
            ));
        }
    };
    Ok(parse_bytes(size)? as f64 / minutes)
}

/// Parses a duration as [`cli::parse_duration`] does, or a number of days like `7d`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let Some(days) = text.strip_suffix('d') else {
        return cli::parse_duration(text);
    };
    let days: f64 = days.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a number with a unit, like `7d`")
    })?;
    if !(days > 0.0 && days.is_finite()) {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// Bytes in binary units with one decimal: `80.0 MiB`.
#[must_use]
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A span of seconds the way a person reads it: `45s`, `12m`, `3.5h`, `2.0d`.
#[must_use]
pub fn format_span(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0}s")
    } else if seconds < 3600.0 {
        format!("{:.0}m", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else {
        format!("{:.1}d", seconds / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_bytes("80MB"), Ok(80_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("2 KiB"), Ok(2048));
        assert!(
            parse_bytes("12XB")
                .unwrap_err()
                .contains("unknown unit `XB`")
        );
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn rates_are_per_minute() {
        assert_eq!(parse_rate("5MB/min"), Ok(5e6));
        assert_eq!(parse_rate("5MB"), Ok(5e6));
        assert_eq!(parse_rate("1KB/s"), Ok(60e3));
        assert_eq!(parse_rate("60MB/h"), Ok(1e6));
        assert!(parse_rate("1MB/fortnight").is_err());
    }

    #[test]
    fn spans_take_days_and_everything_durations_take() {
        assert_eq!(parse_span("7d"), Ok(Duration::from_hours(7 * 24)));
        assert_eq!(parse_span("2m"), Ok(Duration::from_mins(2)));
        assert!(parse_span("0d").is_err());
        assert!(parse_span("xd").is_err());
    }

    #[test]
    fn sizes_and_spans_format_for_people() {
        assert_eq!(format_bytes(80.0 * 1024.0 * 1024.0), "80.0 MiB");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_span(90.0), "2m");
        assert_eq!(format_span(5400.0), "1.5h");
    }
}
