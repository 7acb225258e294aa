//! nginx's time and size values, rewritten in rampart's units.

/// nginx time (`30s`, `5m`, `1h30m`, `86400`, `500ms`) in milliseconds.
pub fn millis(v: &str) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            'M' => 30 * 86_400_000,
            'y' => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(1000)?)?;
        any = true;
    }
    any.then_some(total)
}

/// Milliseconds as a rampart duration.
pub fn duration(ms: u64) -> String {
    if ms.is_multiple_of(86_400_000) && ms > 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// nginx size (`10M`, `10m`, `512k`, `1g`, `4096`) in bytes.
pub fn bytes(v: &str) -> Option<u64> {
    let (digits, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Bytes as a rampart size.
pub fn size(b: u64) -> String {
    if b > 0 && b.is_multiple_of(1 << 30) {
        format!("{}G", b >> 30)
    } else if b > 0 && b.is_multiple_of(1 << 20) {
        format!("{}M", b >> 20)
    } else if b > 0 && b.is_multiple_of(1 << 10) {
        format!("{}k", b >> 10)
    } else {
        b.to_string()
    }
}

/// `client_max_body_size` as a rampart size (`0`, unlimited, is rampart's maximum).
pub fn body_size(d: &crate::import::nginx::Directive) -> Option<String> {
    let b = bytes(d.args.first()?)?;
    Some(if b == 0 {
        "64G".into()
    } else {
        size(b.min(64 << 30))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_values() {
        assert_eq!(millis("30s"), Some(30_000));
        assert_eq!(millis("86400"), Some(86_400_000));
        assert_eq!(millis("1h30m"), Some(5_400_000));
        assert_eq!(millis("500ms"), Some(500));
        assert_eq!(millis("x"), None);
        assert_eq!(duration(86_400_000), "1d");
        assert_eq!(duration(5_400_000), "5400s");
        assert_eq!(bytes("10M"), Some(10 << 20));
        assert_eq!(bytes("10m"), Some(10 << 20));
        assert_eq!(size(10 << 20), "10M");
        assert_eq!(size(1000), "1000");
    }
}
