//! Durations, sizes and rates as operators write them (`30s`, `10M`,
//! `100r/s`), as nginx accepts them.

use std::{fmt, str::FromStr, time::Duration};

/// A parse failure, with what was expected.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitError(pub String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn split_number(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

/// `500ms`, `30s`, `5m`, `24h`, `30d`, `1w`; a bare number is seconds.
pub fn duration(s: &str) -> Result<Duration, UnitError> {
    let bad = || {
        UnitError(format!(
            "`{s}` is not a duration (expected e.g. 500ms, 30s, 5m, 24h, 30d)"
        ))
    };
    let (n, unit) = split_number(s.trim()).ok_or_else(bad)?;
    let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        _ => Err(bad()),
    }
}

/// `512`, `64k`, `10M`, `1G` (powers of 1024, either case).
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
    n.checked_mul(k).ok_or_else(bad)
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
            write!(f, "{}r/m", self.per_1000s * 60 / 1000)
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
        assert!("0r/s".parse::<Rate>().is_err());
        assert!("100/s".parse::<Rate>().is_err());
    }
}
