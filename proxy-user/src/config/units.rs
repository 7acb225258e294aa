//! Durations, sizes and rates as operators write them (`30s`, `10M`,
//! `100r/s`), as nginx accepts them.
//!
//! Every value has a ceiling, so that no key can carry a number that later
//! overflows time or size arithmetic (`Instant + Duration` panics on
//! overflow): no duration above [`YEAR`], no size above [`MAX_SIZE`], no
//! rate above [`MAX_RATE_PER_SEC`]. Keys with a tighter maximum (timeouts:
//! [`DAY`]) use [`duration_at_most`] and [`size_at_most`].

use std::{fmt, str::FromStr, time::Duration};

/// A parse failure, with what was expected.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitError(pub String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One day: the most any timeout may be.
pub const DAY: Duration = Duration::from_secs(86_400);
/// 365 days: the most any duration may be (bans, expiries, `--ttl`).
pub const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// 1 TiB: the most any size may be.
pub const MAX_SIZE: u64 = 1 << 40;
/// The fastest request rate a zone may have (and that `limit set` accepts).
pub const MAX_RATE_PER_SEC: u64 = 1_000_000;

/// `d` as operators write it: `1d`, `365d`, `90s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `n` as operators write a size: `1G`, `64k`, `512`.
pub fn format_size(n: u64) -> String {
    for (k, unit) in [
        (1u64 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "k"),
    ] {
        if n >= k && n.is_multiple_of(k) {
            return format!("{}{unit}", n / k);
        }
    }
    n.to_string()
}

/// A duration no longer than `max` (itself at most [`YEAR`]).
pub fn duration_at_most(s: &str, max: Duration) -> Result<Duration, UnitError> {
    let d = duration(s)?;
    if d > max {
        return Err(UnitError(format!(
            "`{s}` is too long: the maximum is {}",
            format_duration(max)
        )));
    }
    Ok(d)
}

/// A size no larger than `max` (itself at most [`MAX_SIZE`]).
pub fn size_at_most(s: &str, max: u64) -> Result<u64, UnitError> {
    let n = size(s)?;
    if n > max {
        return Err(UnitError(format!(
            "`{s}` is too large: the maximum is {}",
            format_size(max)
        )));
    }
    Ok(n)
}

fn split_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

/// `500ms`, `30s`, `5m`, `24h`, `30d`, `1w`; a bare number is seconds; at
/// most [`YEAR`].
pub fn duration(s: &str) -> Result<Duration, UnitError> {
    let bad = || {
        UnitError(format!(
            "`{s}` is not a duration (expected e.g. 500ms, 30s, 5m, 24h, 30d)"
        ))
    };
    let (n, unit) = split_number(s.trim()).ok_or_else(bad)?;
    let too_long = || {
        UnitError(format!(
            "`{s}` is too long: the maximum is {}",
            format_duration(YEAR)
        ))
    };
    let secs = |k: u64| {
        n.checked_mul(k)
            .map(Duration::from_secs)
            .ok_or_else(too_long)
    };
    let d = match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        _ => Err(bad()),
    }?;
    if d > YEAR {
        return Err(too_long());
    }
    Ok(d)
}

/// `512`, `64k`, `10M`, `1G` (powers of 1024, either case); at most [`MAX_SIZE`].
pub fn size(s: &str) -> Result<u64, UnitError> {
    let bad = || {
        UnitError(format!(
            "`{s}` is not a size (expected e.g. 512, 64k, 10M, 1G)"
        ))
    };
    let (n, unit) = split_number(s.trim()).ok_or_else(bad)?;
    let k: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(bad()),
    };
    match n.checked_mul(k) {
        Some(n) if n <= MAX_SIZE => Ok(n),
        _ => Err(UnitError(format!(
            "`{s}` is too large: the maximum is {}",
            format_size(MAX_SIZE)
        ))),
    }
}

/// A request rate: `100r/s` or `30r/m`, kept in requests per 1000 seconds
/// so that `1r/m` is exact (as nginx keeps rates in requests per millisecond x 1000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_1000s: u64,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.per_1000s as f64 / 1000.0
    }
}

/// `100r/s`, or `30r/m` when under one a second, as operators write rates.
impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.per_1000s.is_multiple_of(1000) {
            write!(f, "{}r/s", self.per_1000s / 1000)
        } else {
            // Rounded: `1r/m` is stored as 16 thousandths a second.
            write!(f, "{}r/m", (self.per_1000s * 60 + 500) / 1000)
        }
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Rate, UnitError> {
        let bad = || {
            UnitError(format!(
                "`{s}` is not a rate (expected e.g. 100r/s or 30r/m)"
            ))
        };
        let (n, unit) = split_number(s.trim()).ok_or_else(bad)?;
        let per_1000s = match unit {
            "r/s" => n.checked_mul(1000),
            "r/m" => n.checked_mul(1000).map(|x| x / 60),
            _ => None,
        }
        .ok_or_else(bad)?;
        if per_1000s == 0 {
            return Err(UnitError(format!("`{s}`: a rate must be above zero")));
        }
        if per_1000s > MAX_RATE_PER_SEC * 1000 {
            return Err(UnitError(format!(
                "`{s}` is too fast: the maximum is {MAX_RATE_PER_SEC}r/s"
            )));
        }
        Ok(Rate { per_1000s })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(duration("15"), Ok(Duration::from_secs(15)));
        assert!(
            duration("5 minutes")
                .unwrap_err()
                .0
                .contains("expected e.g.")
        );
        assert!(duration("").is_err());
    }

    #[test]
    fn durations_have_a_ceiling() {
        assert_eq!(duration("365d"), Ok(YEAR));
        assert_eq!(duration("52w"), Ok(Duration::from_secs(52 * 7 * 86_400)));
        for huge in [
            "366d",
            "18446744073709551615",
            "18446744073709551615ms",
            "99999999999w",
        ] {
            let e = duration(huge).unwrap_err().0;
            assert!(e.contains("the maximum is 365d"), "{huge}: {e}");
        }
        assert_eq!(duration_at_most("1d", DAY), Ok(DAY));
        assert_eq!(
            duration_at_most("25h", DAY).unwrap_err().0,
            "`25h` is too long: the maximum is 1d"
        );
        assert!(
            duration_at_most("5 minutes", DAY)
                .unwrap_err()
                .0
                .contains("expected e.g.")
        );
    }

    #[test]
    fn sizes_have_a_ceiling() {
        assert_eq!(size("1024G"), Ok(MAX_SIZE));
        assert_eq!(
            size("1025G").unwrap_err().0,
            "`1025G` is too large: the maximum is 1T"
        );
        assert!(size("18446744073709551615").is_err());
        assert!(size("18446744073709551615G").is_err());
        assert_eq!(size_at_most("1M", 1 << 20), Ok(1 << 20));
        assert_eq!(
            size_at_most("1025k", 1 << 20).unwrap_err().0,
            "`1025k` is too large: the maximum is 1M"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size("10M"), Ok(10 << 20));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("512"), Ok(512));
        assert!(size("10MB").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!("100r/s".parse(), Ok(Rate { per_1000s: 100_000 }));
        assert_eq!("30r/m".parse(), Ok(Rate { per_1000s: 500 }));
        // Shown as written, though not every rate a minute is a whole
        // number of thousandths a second (`limit show` said 0r/m for 1r/m).
        for text in ["1r/m", "7r/m", "30r/m", "59r/m", "100r/s"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        assert!("0r/s".parse::<Rate>().is_err());
        assert!("100/s".parse::<Rate>().is_err());
        assert_eq!(
            "1000000r/s".parse(),
            Ok(Rate {
                per_1000s: 1_000_000_000
            })
        );
        for fast in [
            "1000001r/s",
            "18446744073709551615r/s",
            "18446744073709551r/s",
        ] {
            assert!(fast.parse::<Rate>().is_err(), "{fast}");
        }
    }
}
